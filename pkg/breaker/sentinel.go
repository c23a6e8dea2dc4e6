package breaker

// This file is the one place that touches sentinel-golang's package-level
// state (see the package doc). Its own package-level variables exist only to
// route sentinel's process-wide callbacks back to the Set they belong to.

import (
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/alibaba/sentinel-golang/logging"
	"github.com/alibaba/sentinel-golang/util"
)

var (
	// circuits maps each sentinel resource name to the *circuit that owns
	// it, for the one state-change listener.
	circuits sync.Map
	// resources numbers the resource names, so that no two circuits of any
	// Set share one.
	resources atomic.Uint64
	// registerOnce registers the listener and the logger once per process.
	registerOnce sync.Once
)

// newResourceName returns a sentinel resource name for upstream that no
// other circuit in the process has: "upstream#N".
func newResourceName(upstream string) string {
	return upstream + "#" + strconv.FormatUint(resources.Add(1), 10)
}

// installSentinel points sentinel's clock at now and, the first time, hands
// its logging to log and registers the listener.
func installSentinel(log *slog.Logger, now func() time.Time) {
	util.SetClock(clock{now})
	registerOnce.Do(func() {
		// Both calls are documented as not safe for concurrent use: the
		// Once makes them happen before any breaker exists.
		_ = logging.ResetGlobalLogger(sentinelLogger{log}) // fails only for nil
		circuitbreaker.RegisterStateChangeListeners(listener{})
	})
}

// listener receives every sentinel breaker's state changes and passes them
// to the circuit of the resource.
type listener struct{}

func (listener) OnTransformToClosed(_ circuitbreaker.State, r circuitbreaker.Rule) {
	route(r, Closed, 0)
}

func (listener) OnTransformToOpen(_ circuitbreaker.State, r circuitbreaker.Rule, snapshot any) {
	ratio, _ := snapshot.(float64)
	route(r, Open, ratio)
}

func (listener) OnTransformToHalfOpen(_ circuitbreaker.State, r circuitbreaker.Rule) {
	route(r, HalfOpen, 0)
}

func route(r circuitbreaker.Rule, to State, ratio float64) {
	if c, ok := circuits.Load(r.Resource); ok {
		c.(*circuit).onTransition(r.Strategy, to, ratio)
	}
}

// clock is sentinel's util.Clock reading a func() time.Time. Sentinel's
// statistics windows, its open periods and its response times all read it.
type clock struct{ now func() time.Time }

func (c clock) Now() time.Time { return c.now() }

// Sleep is not used by the circuit breakers.
func (c clock) Sleep(d time.Duration)     { time.Sleep(d) }
func (c clock) CurrentTimeMillis() uint64 { return uint64(c.now().UnixMilli()) }
func (c clock) CurrentTimeNano() uint64   { return uint64(c.now().UnixNano()) }

// sentinelLogger passes sentinel's warnings and errors to slog and drops
// its debug and info lines (rule loads, which the Set logs itself).
type sentinelLogger struct{ log *slog.Logger }

func (sentinelLogger) Debug(string, ...any) {}
func (sentinelLogger) DebugEnabled() bool   { return false }
func (sentinelLogger) Info(string, ...any)  {}
func (sentinelLogger) InfoEnabled() bool    { return false }
func (l sentinelLogger) WarnEnabled() bool  { return true }
func (l sentinelLogger) ErrorEnabled() bool { return true }
func (l sentinelLogger) Warn(msg string, kv ...any) {
	l.log.Warn("sentinel: "+msg, attrs(kv)...)
}

func (l sentinelLogger) Error(err error, msg string, kv ...any) {
	l.log.Error("sentinel: "+msg, append(attrs(kv), slog.Any("error", err))...)
}

// attrs turns sentinel's alternating keys and values into slog attributes,
// formatting values with %v (sentinel passes rule pointers and the like).
func attrs(kv []any) []any {
	out := make([]any, 0, len(kv)/2+1)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, slog.String(fmt.Sprint(kv[i]), fmt.Sprint(kv[i+1])))
	}
	return out
}
