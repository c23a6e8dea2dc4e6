// Package breaker puts a circuit breaker in front of each upstream a process
// calls, so that a failing or slow upstream is given time to recover instead
// of a queue of requests that all wait for it, and callers get an answer at
// once instead of a timeout.
//
// A breaker watches the calls of the last Window. It trips — goes from
// closed to open — when, with at least MinRequests calls in the window,
// either the share of calls that failed reaches ErrorRatio or the share that
// took longer than SlowCall reaches SlowRatio. While open, every call fails
// at once with an [*OpenError] (matching [ErrOpen]) that says how long until
// the breaker tries again. After OpenFor it goes half-open: up to Probes
// trial calls pass; if every one of them succeeds (and, with SlowRatio set,
// is not slow) the breaker closes with a fresh window, and if one fails it
// opens again for another OpenFor. Every change of state is logged and exported as metrics:
//
//	breaker_state{upstream}                 0 closed, 1 half-open, 2 open
//	breaker_transitions_total{upstream,to}  changes of state
//	breaker_rejected_total{upstream}        calls failed fast
//
// A call fails when its function returns an error (for [Set.RoundTripper]:
// a transport error or a 5xx answer). A call the caller itself cancelled
// (context.Canceled) is not held against the upstream.
//
// # Rules change live
//
// [Set.SetRules] replaces the rules of every upstream at once, typically
// from a JSON document watched in Consul KV (pkg/liverules): an upstream
// whose rules did not change keeps its breaker as it is; one whose rules
// changed starts afresh, closed, with an empty window. Validate a document
// with [Validate] before applying it; SetRules refuses invalid rules and
// keeps the old ones.
//
// # sentinel-golang, and its global state
//
// The statistics and the state machine are alibaba/sentinel-golang's
// circuit breakers (v1.0.4). Sentinel keeps its rules, its breakers, its
// state-change listeners, its logger and its clock in package-level
// variables; this package is the one place in microshop that touches them,
// and it keeps them apart per [Set]: each upstream's breaker is a sentinel
// resource of a name no other Set uses, and the one listener this package
// registers hands each event to the Set that owns the resource. What stays
// process-wide: sentinel's clock (the last NewSet's Config.Now) and its
// logger (the first NewSet's Config.Logger, warnings and errors only). A
// process normally has exactly one Set.
//
// What this package adds to sentinel, and why:
//
//   - A bound on half-open trial calls. Sentinel's half-open state lets
//     every call through once its ProbeNum is above zero; here at most Probes
//     calls are in flight while the breaker is not closed, the others fail
//     fast as if it were open.
//   - Thresholds of 0 mean "this strategy is off". Sentinel trips when a
//     ratio reaches its threshold (>=), which makes 1.0 usable — "all calls
//     in the window failed" (sentinel-golang fixed the Java original's
//     strict > that never trips at 1.0) — but makes 0 trip on a healthy
//     window.
//   - No sentinel initialisation: its circuit breakers work without
//     api.InitDefault, which would open log files under ~/logs/csp and start
//     flushing a metric log unless Log.Metric.FlushIntervalSec is 0. Its
//     console logger, which prints to stdout, is replaced by the Set's slog
//     logger.
//   - Metrics on the caller's Prometheus registry, labelled by upstream
//     (sentinel's own counter lives in a registry of its own, by resource).
package breaker
