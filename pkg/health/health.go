// Package health serves a process's liveness (/healthz) and readiness
// (/readyz) endpoints.
//
// Liveness answers 200 while the process can serve HTTP at all; an
// orchestrator restarts the process when it fails. Readiness runs every
// registered dependency check (database, Kafka, ...) and answers 200 only when
// all pass, reporting each by name, so that the launcher, Consul and
// Kubernetes send traffic only to instances that can do their work. Once
// shutdown begins (Drain), readiness answers 503 so traffic moves away while
// in-flight requests finish.
package health

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// CheckFunc reports whether a dependency is usable; it must return when ctx ends.
type CheckFunc func(ctx context.Context) error

// Checks holds the named dependency checks of one process. Add checks before
// serving; Live, Ready and Drain are safe for concurrent use.
type Checks struct {
	timeout  time.Duration
	names    []string
	funcs    []CheckFunc
	draining atomic.Bool
}

// New returns an empty set of checks; each check gets at most timeout per
// readiness probe (timeout <= 0 means 2s).
func New(timeout time.Duration) *Checks {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	return &Checks{timeout: timeout}
}

// Add registers a check under name (for example "database"). Not safe to call
// concurrently with Ready.
func (c *Checks) Add(name string, check CheckFunc) {
	c.names = append(c.names, name)
	c.funcs = append(c.funcs, check)
}

// Drain marks the process as shutting down: from now on Ready answers 503.
func (c *Checks) Drain() { c.draining.Store(true) }

// Status values used in reports.
const (
	StatusUp       = "up"
	StatusDown     = "down"
	StatusReady    = "ready"
	StatusNotReady = "not ready"
	StatusDraining = "draining"
)

// Report is the JSON body of a readiness answer.
type Report struct {
	// Status is StatusReady, StatusNotReady or StatusDraining.
	Status string `json:"status"`
	// Checks holds one result per registered dependency, by name.
	Checks map[string]Result `json:"checks"`
}

// Result is the outcome of one check.
type Result struct {
	// Status is StatusUp or StatusDown.
	Status string `json:"status"`
	// Error says why the dependency is down.
	Error string `json:"error,omitempty"`
}

// Live answers 200 {"status":"up"}: the process is running and serving HTTP.
func (c *Checks) Live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": StatusUp})
}

// Ready runs every check concurrently and answers 200 with a Report when all
// pass, 503 otherwise.
func (c *Checks) Ready(w http.ResponseWriter, r *http.Request) {
	rep := c.Check(r.Context())
	code := http.StatusOK
	if rep.Status != StatusReady {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, rep)
}

// Check runs every check concurrently, each bounded by the timeout, and
// returns the report Ready would send.
func (c *Checks) Check(ctx context.Context) Report {
	results := make([]Result, len(c.funcs))
	var wg sync.WaitGroup
	for i, check := range c.funcs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			results[i] = Result{Status: StatusUp}
			if err := check(ctx); err != nil {
				results[i] = Result{Status: StatusDown, Error: err.Error()}
			}
		})
	}
	wg.Wait()

	rep := Report{Status: StatusReady, Checks: make(map[string]Result, len(results))}
	for i, res := range results {
		rep.Checks[c.names[i]] = res
		if res.Status != StatusUp {
			rep.Status = StatusNotReady
		}
	}
	if c.draining.Load() {
		rep.Status = StatusDraining
	}
	return rep
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}
