package upstream

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Retries is the retry policy of the clients of the gateway's services.
// One Retries may serve several clients; each client keeps a budget of its
// own.
//
// The budget is what keeps retries from storming. Every request deposits
// Ratio of a token (up to Reserve tokens); every retry takes one whole
// token, and without one there is no retry. So over any stretch of time the
// retries of one upstream are at most Ratio times its requests, plus
// Reserve: when a whole service fails, its load grows by a tenth at most
// instead of tripling, while the odd failure of one instance (a restart, a
// crash) is always retried. (Finagle's and gRPC's retry budgets work the
// same way; the dozen lines are written here rather than taken from a
// library, whose retry policies know nothing of instances to avoid.)
type Retries struct {
	// Ratio is the budget's share of extra requests, e.g. 0.1.
	Ratio float64
	// Reserve is how many tokens the budget holds at most, and starts
	// with, so that a quiet gateway can retry too.
	Reserve float64

	metric *prometheus.CounterVec
}

// NewRetries returns the policy, its counter upstream_retries_total{upstream,
// reason} registered on reg (nil: not exported). reason is "connection
// failure" or "503" for a retry sent, "budget exhausted" for one the budget
// refused.
func NewRetries(ratio, reserve float64, reg prometheus.Registerer) (*Retries, error) {
	if ratio < 0 || ratio > 1 || reserve < 1 {
		return nil, fmt.Errorf("retry budget: ratio %v must be in [0, 1] and reserve %v at least 1", ratio, reserve)
	}
	r := &Retries{Ratio: ratio, Reserve: reserve, metric: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "upstream_retries_total",
		Help: "Requests to a service behind the gateway sent again to another instance (reason: connection failure, 503), or not because the retry budget was spent (reason: budget exhausted).",
	}, []string{"upstream", "reason"})}
	if reg != nil {
		if err := reg.Register(r.metric); err != nil {
			return nil, fmt.Errorf("register upstream_retries_total: %w", err)
		}
	}
	return r, nil
}

func (r *Retries) count(upstream, reason string) { r.metric.WithLabelValues(upstream, reason).Inc() }

// budget is one client's retry tokens.
type budget struct {
	ratio, max float64

	mu     sync.Mutex
	tokens float64
}

func newBudget(ratio, max float64) *budget { return &budget{ratio: ratio, max: max, tokens: max} }

// deposit credits one request.
func (b *budget) deposit() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.max, b.tokens+b.ratio)
}

// withdraw takes a token for a retry, and reports whether there was one.
func (b *budget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Metric returns upstream_retries_total.
func (r *Retries) Metric() *prometheus.CounterVec { return r.metric }
