package breaker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/base"
	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
	"github.com/prometheus/client_golang/prometheus"
)

// State is a breaker's state. Its numeric value is the breaker_state gauge's.
type State int

// The states, in order of severity.
const (
	Closed   State = iota // calls pass; the window is watched
	HalfOpen              // up to Probes trial calls pass
	Open                  // every call fails fast
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case HalfOpen:
		return "half-open"
	case Open:
		return "open"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// ErrOpen matches every *OpenError: errors.Is(err, breaker.ErrOpen).
var ErrOpen = errors.New("circuit breaker open")

// OpenError is returned, without calling the upstream, while its breaker is
// open or while a half-open breaker has all its trial calls in flight.
type OpenError struct {
	// Upstream is the upstream whose breaker refused the call.
	Upstream string
	// RetryAfter is how long until the breaker lets a call through again:
	// the rest of its open period, or while trial calls are under way, one
	// second. Round it up for an HTTP Retry-After header.
	RetryAfter time.Duration
}

func (e *OpenError) Error() string {
	return fmt.Sprintf("%s: %v, retry after %v", e.Upstream, ErrOpen, e.RetryAfter.Round(time.Millisecond))
}

// Is reports whether target is ErrOpen.
func (e *OpenError) Is(target error) bool { return target == ErrOpen }

// halfOpenRetryAfter is the RetryAfter of a call refused while trial calls
// are under way: their outcome, and so the next state, is not known yet.
const halfOpenRetryAfter = time.Second

// Config configures a Set. The zero value is usable: default logger, no
// metrics exported, the real clock.
type Config struct {
	// Logger receives state changes and rule changes; nil means
	// slog.Default(). The first Set's logger also receives sentinel's own
	// warnings and errors.
	Logger *slog.Logger
	// Metrics is where the breaker_* metrics are registered; nil means
	// they are not exported. Several Sets may share one.
	Metrics prometheus.Registerer
	// Now is the clock; nil means time.Now. Sentinel's clock is
	// process-wide: NewSet installs this one for every Set.
	Now func() time.Time
}

// Set holds the breakers of one process, one per upstream. Its methods are
// safe for concurrent use.
type Set struct {
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time

	mu       sync.RWMutex
	circuits map[string]*circuit // by upstream; an upstream without rules has none
}

// NewSet returns a Set with rules, which must be valid (see Validate).
func NewSet(cfg Config, rules map[string]Rules) (*Set, error) {
	s := &Set{
		log:      cmp.Or(cfg.Logger, slog.Default()),
		now:      cfg.Now,
		circuits: make(map[string]*circuit),
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if s.metrics, err = newMetrics(cfg.Metrics); err != nil {
		return nil, err
	}
	installSentinel(s.log, s.now)
	if err := s.SetRules(rules); err != nil {
		return nil, err
	}
	return s, nil
}

// SetRules replaces the rules of every upstream with rules: upstreams whose
// rules are unchanged keep their breakers as they are, changed ones start
// afresh (closed, empty window), missing ones lose their breaker. Invalid
// rules are refused with an error and the rules in force stay.
func (s *Set) SetRules(rules map[string]Rules) error {
	if err := Validate(rules); err != nil {
		return fmt.Errorf("breaker rules: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, upstream := range slices.Sorted(maps.Keys(s.circuits)) {
		old := s.circuits[upstream]
		r, ok := rules[upstream]
		if ok && r.enabled() && r.withDefaults() == old.rules {
			continue
		}
		old.retire()
		delete(s.circuits, upstream)
		if !ok || !r.enabled() {
			s.log.Info("circuit breaker removed", slog.String("upstream", upstream))
		}
	}
	for _, upstream := range slices.Sorted(maps.Keys(rules)) {
		r := rules[upstream]
		if _, kept := s.circuits[upstream]; kept || !r.enabled() {
			continue
		}
		c, err := newCircuit(s, upstream, r.withDefaults())
		if err != nil {
			return err
		}
		s.circuits[upstream] = c
		s.log.Info("circuit breaker rules applied", slog.String("upstream", upstream), slog.Any("rules", c.rules))
	}
	return nil
}

// Rules returns the rules in force, with defaults filled in.
func (s *Set) Rules() map[string]Rules {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rules := make(map[string]Rules, len(s.circuits))
	for upstream, c := range s.circuits {
		rules[upstream] = c.rules
	}
	return rules
}

// State returns the state of upstream's breaker; Closed for an upstream
// without one.
func (s *Set) State(upstream string) State {
	if c := s.circuit(upstream); c != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.state
	}
	return Closed
}

// Close removes every breaker of s from sentinel. Calls made afterwards
// pass unguarded.
func (s *Set) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for upstream, c := range s.circuits {
		c.retire()
		delete(s.circuits, upstream)
	}
}

// Do calls fn through upstream's breaker. While the breaker is open it
// returns an *OpenError at once, without calling fn; otherwise it returns
// fn's error, after counting it as a failure unless it is a cancellation
// by the caller (ctx cancelled). An upstream without rules is called
// unguarded.
func (s *Set) Do(ctx context.Context, upstream string, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c := s.circuit(upstream)
	if c == nil {
		return fn(ctx)
	}
	var err error
	if refused := c.call(func() error {
		err = fn(ctx)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			return nil // the caller gave up; not the upstream's failure
		}
		return err
	}); refused != nil {
		return refused
	}
	return err
}

// RoundTripper returns an http.RoundTripper that sends requests through
// next (nil means http.DefaultTransport) behind upstream's breaker. A
// transport error or a 5xx answer counts as a failure (the answer is still
// returned to the caller); a call is timed until the response headers
// arrive. While the breaker is open, RoundTrip returns an *OpenError, which
// http.Client wraps in a *url.Error that errors.Is(err, ErrOpen) sees
// through.
func (s *Set) RoundTripper(upstream string, next http.RoundTripper) http.RoundTripper {
	return &roundTripper{set: s, upstream: upstream, next: cmp.Or[http.RoundTripper](next, http.DefaultTransport)}
}

type roundTripper struct {
	set      *Set
	upstream string
	next     http.RoundTripper
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	var resp *http.Response
	err := rt.set.Do(req.Context(), rt.upstream, func(context.Context) error {
		var err error
		resp, err = rt.next.RoundTrip(req)
		if err != nil {
			return err
		}
		if resp.StatusCode >= 500 {
			return errStatus{resp.StatusCode}
		}
		return nil
	})
	var status errStatus
	if errors.As(err, &status) {
		return resp, nil
	}
	return resp, err
}

// errStatus is a 5xx answer, counted as a failure and then given back to
// the caller as the response it is.
type errStatus struct{ code int }

func (e errStatus) Error() string { return fmt.Sprintf("upstream answered %d", e.code) }

func (s *Set) circuit(upstream string) *circuit {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.circuits[upstream]
}

// transition logs a change of an upstream's state and counts it.
func (s *Set) transition(upstream string, from, to State, attrs ...slog.Attr) {
	level := slog.LevelInfo
	if to == Open {
		level = slog.LevelWarn
	}
	attrs = append([]slog.Attr{slog.String("upstream", upstream), slog.String("from", from.String()), slog.String("to", to.String())}, attrs...)
	s.log.LogAttrs(context.Background(), level, "circuit breaker "+to.String(), attrs...)
	s.metrics.transition(upstream, to)
	s.metrics.state(upstream, to)
}

// circuit is one upstream's breaker under one version of its rules: the
// sentinel resource that holds its statistics and its state machines (one
// per strategy), and the state this package derives from them.
type circuit struct {
	set      *Set
	upstream string
	resource string // the sentinel resource, unique to this circuit
	rules    Rules  // with defaults

	mu        sync.Mutex
	strategy  map[circuitbreaker.Strategy]State // each sentinel breaker's state
	openUntil map[circuitbreaker.Strategy]time.Time
	state     State  // the most severe of strategy's
	probes    uint64 // calls admitted while not closed and still in flight
	retired   bool   // the rules changed; events are ignored
}

func newCircuit(s *Set, upstream string, r Rules) (*circuit, error) {
	c := &circuit{
		set:       s,
		upstream:  upstream,
		resource:  newResourceName(upstream),
		rules:     r,
		strategy:  make(map[circuitbreaker.Strategy]State),
		openUntil: make(map[circuitbreaker.Strategy]time.Time),
	}
	circuits.Store(c.resource, c)
	if _, err := circuitbreaker.LoadRulesOfResource(c.resource, r.sentinelRules(c.resource)); err != nil {
		circuits.Delete(c.resource)
		return nil, fmt.Errorf("load breaker rules of %s: %w", upstream, err)
	}
	s.metrics.state(upstream, Closed)
	return c, nil
}

// retire removes c's rules from sentinel. If c was not closed, its upstream
// is logged as closed: its successor starts closed.
func (c *circuit) retire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retired = true
	_ = circuitbreaker.ClearRulesOfResource(c.resource) // only fails for an empty name
	circuits.Delete(c.resource)
	if c.state != Closed {
		c.set.transition(c.upstream, c.state, Closed, slog.String("reason", "rules changed"))
	}
}

// call runs fn through the breaker: fn's error is recorded as the outcome.
// It returns an *OpenError if the breaker refused the call, nil otherwise.
func (c *circuit) call(fn func() error) error {
	probe, refused := c.admit()
	if refused != nil {
		c.set.metrics.rejected(c.upstream)
		return refused
	}
	if probe {
		defer c.release()
	}
	entry, blocked := api.Entry(c.resource, api.WithTrafficType(base.Outbound))
	if blocked != nil {
		c.set.metrics.rejected(c.upstream)
		return c.openError()
	}
	defer entry.Exit()
	if err := fn(); err != nil {
		api.TraceError(entry, err)
	}
	return nil
}

// admit decides what may reach sentinel: everything while closed; while
// open nothing before the open period ends; and once it has ended (or
// while half-open) at most rules.Probes calls at a time, which are the
// trial calls. Sentinel itself would let every call through while
// half-open.
func (c *circuit) admit() (probe bool, refused error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == Closed {
		return false, nil
	}
	if c.state == Open && c.set.now().Before(c.until()) {
		return false, c.openErrorLocked()
	}
	if c.probes >= c.rules.Probes {
		return false, c.openErrorLocked()
	}
	c.probes++
	return true, nil
}

func (c *circuit) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probes--
}

func (c *circuit) openError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.openErrorLocked()
}

func (c *circuit) openErrorLocked() error {
	wait := c.until().Sub(c.set.now())
	if wait <= 0 {
		wait = halfOpenRetryAfter
	}
	return &OpenError{Upstream: c.upstream, RetryAfter: wait}
}

// until returns when the last strategy to open lets trial calls through.
// c.mu is held.
func (c *circuit) until() time.Time {
	var t time.Time
	for s, u := range c.openUntil {
		if c.strategy[s] == Open && u.After(t) {
			t = u
		}
	}
	return t
}

// onTransition records that sentinel moved the breaker of strategy to
// state, and reports a change of the upstream's state. ratio is the ratio
// that tripped it, when it opened from closed. It is called by sentinel,
// synchronously, from the goroutine of the call that caused the change.
func (c *circuit) onTransition(strategy circuitbreaker.Strategy, to State, ratio float64) {
	c.mu.Lock()
	if c.retired {
		c.mu.Unlock()
		return
	}
	c.strategy[strategy] = to
	if to == Open {
		c.openUntil[strategy] = c.set.now().Add(time.Duration(c.rules.OpenFor))
	}
	from := c.state
	c.state = Closed
	for _, st := range c.strategy {
		c.state = max(c.state, st)
	}
	if from == c.state {
		c.mu.Unlock()
		return
	}
	// Reported under the lock, so that the log and the gauge see the
	// changes in the order they happened.
	defer c.mu.Unlock()
	attrs := []slog.Attr{slog.String("strategy", strategyName(strategy))}
	if c.state == Open {
		attrs = append(attrs, slog.Float64("ratio", ratio), slog.Duration("retry_after", c.until().Sub(c.set.now())))
	}
	c.set.transition(c.upstream, from, c.state, attrs...)
}

func strategyName(s circuitbreaker.Strategy) string {
	switch s {
	case circuitbreaker.ErrorRatio:
		return "error ratio"
	case circuitbreaker.SlowRequestRatio:
		return "slow-call ratio"
	}
	return s.String()
}
