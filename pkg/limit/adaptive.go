package limit

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/failsafe-go/failsafe-go/adaptivelimiter"
	"github.com/go-kratos/aegis/ratelimit"
	"github.com/go-kratos/aegis/ratelimit/bbr"
	"github.com/platinummonkey/go-concurrency-limits/core"
	cllimit "github.com/platinummonkey/go-concurrency-limits/limit"
	cllimiter "github.com/platinummonkey/go-concurrency-limits/limiter"
	"github.com/platinummonkey/go-concurrency-limits/strategy"
)

// Adaptive is a concurrency limiter that finds its limit by itself. The
// candidates below wrap the libraries the overload benchmark compares;
// the Limiter adds priorities on top of any of them.
//
// Implementations are safe for concurrent use.
type Adaptive interface {
	// Acquire admits one request, or refuses it (ok false) because the
	// process is at its limit. An admitted request must be released once
	// answered, exactly once, with failed true when it did not complete
	// normally (a 5xx, a timeout): loss-based algorithms back off on
	// those.
	Acquire() (release func(failed bool), ok bool)
	// Limit is the in-flight limit in force, 0 while the algorithm has
	// none (kratos and sentinel limit only while the CPU is busy).
	Limit() int
	// Close releases what the algorithm holds (sentinel's global rules).
	Close()
}

// NewAdaptive returns the adaptive limiter of algorithm, nil for None.
func NewAdaptive(a Algorithm) (Adaptive, error) {
	switch a {
	case None:
		return nil, nil
	case Sentinel:
		return newSentinel()
	case KratosBBR:
		return newKratos(), nil
	case Failsafe:
		return newFailsafe(), nil
	case Gradient2:
		return newNetflix(cllimit.NewDefaultGradient2Limit(string(a), nil, nil))
	case Vegas:
		return newNetflix(cllimit.NewDefaultVegasLimitWithLimit(string(a), 20, nil, nil))
	}
	return nil, fmt.Errorf("unknown adaptive algorithm %q", a)
}

// Bounds of failsafe's concurrency limit. Vegas starts at initialLimit
// too (up to the library's 1000); Gradient2 keeps the library's defaults
// (20, between 20 and 200); kratos and sentinel have no bounds.
const (
	minLimit     = 4
	initialLimit = 20
	maxLimit     = 1000
)

// failsafe is failsafe-go's adaptive limiter: it compares the recent p90
// of execution times with a baseline and the correlation of limit and
// throughput, and rejects what does not fit, without queueing.
type failsafe struct {
	l adaptivelimiter.AdaptiveLimiter[any]
}

func newFailsafe() *failsafe {
	return &failsafe{adaptivelimiter.NewBuilder[any]().WithLimits(minLimit, maxLimit, initialLimit).Build()}
}

func (f *failsafe) Acquire() (func(bool), bool) {
	p, ok := f.l.TryAcquirePermit()
	if !ok {
		return nil, false
	}
	return func(failed bool) {
		if failed {
			p.Drop()
			return
		}
		p.Record()
	}, true
}

func (f *failsafe) Limit() int { return f.l.Limit() }
func (f *failsafe) Close()     {}

// netflix is a limit of platinummonkey/go-concurrency-limits (Gradient2 or
// Vegas, ports of Netflix's concurrency-limits) enforced by its default
// limiter, which samples round trips in windows and rejects above the
// limit.
type netflix struct {
	limit   core.Limit
	limiter *cllimiter.DefaultLimiter
}

func newNetflix(l core.Limit) (*netflix, error) {
	// Windows of at least 100 samples over 100 ms–1 s; round trips under
	// 10 µs are ignored (the library's default, 100 µs, would ignore the
	// fastest of ours).
	lim, err := cllimiter.NewDefaultLimiter(l, 1e8, 1e9, 1e4, 100, strategy.NewSimpleStrategy(l.EstimatedLimit()), nil, nil)
	if err != nil {
		return nil, fmt.Errorf("adaptive limiter: %w", err)
	}
	return &netflix{limit: l, limiter: lim}, nil
}

func (n *netflix) Acquire() (func(bool), bool) {
	l, ok := n.limiter.Acquire(context.Background())
	if !ok {
		return nil, false
	}
	return func(failed bool) {
		if failed {
			l.OnDropped()
			return
		}
		l.OnSuccess()
	}, true
}

func (n *netflix) Limit() int { return n.limit.EstimatedLimit() }
func (n *netflix) Close()     {}

// kratos is go-kratos/aegis' BBR: while the machine's CPU (sampled by the
// package itself, every 500 ms, smoothed) is above 80 %, it admits no
// more in flight than the best throughput × the least round trip of the
// last 10 s. It measures round trips in whole milliseconds.
type kratos struct {
	l         *bbr.BBR
	threshold int64
}

const kratosCPUThreshold = 800 // per mille, the library's default

func newKratos() *kratos {
	return &kratos{l: bbr.NewLimiter(bbr.WithCPUThreshold(kratosCPUThreshold)), threshold: kratosCPUThreshold}
}

func (k *kratos) Acquire() (func(bool), bool) {
	done, err := k.l.Allow()
	if err != nil {
		return nil, false
	}
	return func(bool) { done(ratelimit.DoneInfo{}) }, true
}

func (k *kratos) Limit() int {
	s := k.l.Stat()
	if s.CPU < k.threshold {
		return 0
	}
	return int(min(s.MaxInFlight, math.MaxInt32))
}

func (k *kratos) Close() {}

// counted counts the requests in flight of an Adaptive for the Limiter:
// the shares of priorities compare against it.
type counted struct {
	Adaptive
	inflight atomic.Int64
}

func (c *counted) acquire() (func(bool), bool) {
	release, ok := c.Adaptive.Acquire()
	if !ok {
		return nil, false
	}
	c.inflight.Add(1)
	return func(failed bool) {
		c.inflight.Add(-1)
		release(failed)
	}, true
}
