// Package limit keeps a service fast when more requests arrive than it can
// serve: it refuses the excess at once, cheaply, instead of letting every
// request queue and slow down together. It is Gin middleware, installed on
// every microshop service's router by pkg/process, and it decides before
// the handler runs, without touching it.
//
// Two mechanisms, each answering its own status:
//
//   - Flow control (429 Too Many Requests): token buckets per route and per
//     authenticated user, configured by [Rules]. A route's bucket caps what
//     the whole process spends on it; a user's bucket makes sure that one
//     customer cannot take the shop's whole capacity while others wait.
//   - Adaptive concurrency limiting (503 Service Unavailable): an
//     algorithm ([Adaptive]) watches latency (or CPU) and keeps the number
//     of requests in flight near what the process can serve without
//     queueing. Which algorithm is the default was decided by the overload
//     benchmark in docs/benchmarks.md (make bench-overload), which runs
//     them side by side.
//
// Every refused request gets application/problem+json and a Retry-After
// header (whole seconds), so that well-behaved clients back off.
//
// # Priorities
//
// Each route has a [Priority]. Critical routes (health, readiness,
// metrics, admin) are never shed: /healthz, /readyz and /metrics are
// registered before the middleware and never pass through it, and a route
// whose rule says "critical" skips it. Among the others, when the process
// is at its adaptive limit, low-priority work goes first: a request of
// priority p is admitted only while the requests in flight are below
// Share(p) of the limit, so browsing (low) is shed before logins and order
// lists (normal), and those before a checkout in progress — placing an
// order and polling it (high) — which may use the whole limit. This is the
// tiering of Uber's Cinnamon, over whichever algorithm finds the limit.
//
// # Rules, live
//
// Rules are one JSON document (see [Rules] for its shape). In the embedded
// mode it is the environment variable <SERVICE>_LIMIT_RULES; with Consul
// it is the key microshop/<service>/limit, followed while the service runs
// (pkg/liverules) and put in force by [Limiter.SetRules] once it validates.
//
// # Metrics
//
// limiter_admitted_total{priority}, limiter_rejected_total{priority,reason}
// (reason: route, user, adaptive), limiter_inflight, limiter_limit (the
// adaptive limit in force, 0 when the algorithm has none it can tell; set
// when rules are put in force, then after each answer) and
// limiter_algorithm{algorithm} (1 for the adaptive algorithm in force, as
// the rules name it: none, sentinel, kratos, failsafe, gradient2, vegas).
// The counters start at 0 for every priority and reason.
//
// # Global state
//
// sentinel-golang keeps its rules and statistics in package-level state,
// and so does kratos' BBR (a CPU sampler started by its package's init).
// The sentinel candidate is therefore one per process: this package wraps
// it in sentinel.go and nowhere else.
package limit
