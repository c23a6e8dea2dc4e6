package limit

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// Priority orders requests for shedding: when the process is at its
// limit, lower priorities are refused first. The zero value is Normal.
type Priority int

// The priorities, from the first shed to never shed.
const (
	Normal   Priority = iota // logins, order lists: the default
	Low                      // browsing: product lists and pages, images
	High                     // a checkout in progress: placing an order, polling it
	Critical                 // health, readiness, metrics, admin: never shed
)

// priorities lists every priority, for metrics and validation.
var priorities = []Priority{Low, Normal, High, Critical}

// String returns the priority's name as rules and metrics spell it.
func (p Priority) String() string {
	switch p {
	case Low:
		return "low"
	case Normal:
		return "normal"
	case High:
		return "high"
	case Critical:
		return "critical"
	}
	return fmt.Sprintf("Priority(%d)", int(p))
}

// Share is the fraction of the adaptive limit that requests of priority p
// may fill: a request is admitted only while fewer than Share(p) × limit
// requests are in flight. High may use all of it; Critical is never
// limited (+Inf).
func (p Priority) Share() float64 {
	switch p {
	case Low:
		return 0.7
	case Normal:
		return 0.85
	case High:
		return 1
	}
	return math.Inf(1)
}

// MarshalJSON writes p by name.
func (p Priority) MarshalJSON() ([]byte, error) { return json.Marshal(p.String()) }

// UnmarshalJSON reads a priority's name: "low", "normal", "high" or
// "critical".
func (p *Priority) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("priority must be a string: %w", err)
	}
	for _, q := range priorities {
		if q.String() == s {
			*p = q
			return nil
		}
	}
	return fmt.Errorf("unknown priority %q (want low, normal, high or critical)", s)
}

// Bucket is a token bucket: Rate requests per second on average, Burst at
// once. A zero Rate means no limit.
type Bucket struct {
	Rate  float64 `json:"rate,omitzero"`
	Burst int     `json:"burst,omitzero"`
}

func (b Bucket) enabled() bool { return b.Rate > 0 }

func (b Bucket) validate(name string) error {
	switch {
	case b.Rate < 0 || math.IsNaN(b.Rate) || math.IsInf(b.Rate, 0):
		return fmt.Errorf("%s: rate %v is not a positive number", name, b.Rate)
	case b.Burst < 0:
		return fmt.Errorf("%s: burst %d is negative", name, b.Burst)
	case b.Rate > 0 && b.Burst == 0:
		return fmt.Errorf("%s: a rate needs a burst of at least 1", name)
	}
	return nil
}

// Route is the rule of one route.
type Route struct {
	// Priority of the route's requests; zero is Normal.
	Priority Priority `json:"priority,omitzero"`
	// Bucket caps the route's requests, all callers together; zero: no cap.
	Bucket
	// User caps each authenticated user's requests on this route; zero:
	// no cap (Rules.User still applies).
	User Bucket `json:"user,omitzero"`
}

// Algorithm names an adaptive concurrency limiter ([NewAdaptive]).
type Algorithm string

// The algorithms compared by the overload benchmark.
const (
	None      Algorithm = "none"      // no adaptive limit
	Sentinel  Algorithm = "sentinel"  // sentinel-golang's system rule, BBR strategy on CPU usage
	KratosBBR Algorithm = "kratos"    // go-kratos/aegis' BBR
	Failsafe  Algorithm = "failsafe"  // failsafe-go's adaptive limiter
	Gradient2 Algorithm = "gradient2" // Netflix's Gradient2 (platinummonkey/go-concurrency-limits)
	Vegas     Algorithm = "vegas"     // Netflix's Vegas (platinummonkey/go-concurrency-limits)
)

// Algorithms lists every algorithm, None first.
var Algorithms = []Algorithm{None, Sentinel, KratosBBR, Failsafe, Gradient2, Vegas}

// Default is the adaptive algorithm of DefaultRules, chosen by the
// overload benchmark on a quiet machine (docs/benchmarks.md, "Overload"):
// Gradient2 had the best goodput at 3 and 5 times capacity on the shop's
// mix (68 % and 50 % of capacity, no errors), ahead of Vegas and failsafe.
// No candidate kept the admitted p99 within twice the unloaded p99 there:
// a checkout's saga work runs behind no HTTP limiter (the benchmark's
// browse mix, without it, shows the difference).
const Default = Gradient2

// DefaultRetryAfter is the Retry-After of an adaptive rejection when
// Rules.RetryAfter is zero.
const DefaultRetryAfter = time.Second

// Rules are a service's limits: the JSON document of <SERVICE>_LIMIT_RULES
// or of Consul KV's microshop/<service>/limit.
//
//	{"adaptive": "gradient2", "retryAfter": "1s",
//	 "user": {"rate": 20, "burst": 40},
//	 "routes": {
//	   "GET /api/v1/products": {"priority": "low"},
//	   "POST /api/v1/orders":  {"priority": "high", "user": {"rate": 2, "burst": 5}}}}
//
// Routes are keyed by method and Gin route template, as the router
// registered them. A route without a rule is Normal and has no bucket of
// its own.
type Rules struct {
	// Adaptive is the concurrency limiting algorithm; empty means Default,
	// "none" turns adaptive limiting off.
	Adaptive Algorithm `json:"adaptive,omitzero"`
	// RetryAfter is what an adaptive rejection tells the client to wait,
	// rounded up to whole seconds; zero means DefaultRetryAfter.
	RetryAfter Duration `json:"retryAfter,omitzero"`
	// User caps each authenticated user's requests over every route that
	// is not critical; zero: no cap.
	User Bucket `json:"user,omitzero"`
	// Routes are the rules of routes, by "METHOD /template".
	Routes map[string]Route `json:"routes,omitempty"`
}

// DefaultRules are adaptive limiting with the Default algorithm and no
// flow control.
func DefaultRules() Rules { return Rules{Adaptive: Default} }

func (r Rules) algorithm() Algorithm {
	if r.Adaptive == "" {
		return Default
	}
	return r.Adaptive
}

func (r Rules) retryAfter() time.Duration {
	if r.RetryAfter == 0 {
		return DefaultRetryAfter
	}
	return time.Duration(r.RetryAfter)
}

// Validate reports every problem of a rules document. It is the check
// given to pkg/liverules before a document replaces the rules in force.
func Validate(r Rules) error {
	var errs []error
	if r.Adaptive != "" && !slices.Contains(Algorithms, r.Adaptive) {
		errs = append(errs, fmt.Errorf("adaptive: unknown algorithm %q", r.Adaptive))
	}
	if d := time.Duration(r.RetryAfter); d < 0 || d > time.Hour {
		errs = append(errs, fmt.Errorf("retryAfter %v is not in [0, 1h]", d))
	}
	errs = append(errs, r.User.validate("user"))
	for _, key := range slices.Sorted(maps.Keys(r.Routes)) {
		method, path, ok := strings.Cut(key, " ")
		if !ok || method == "" || !strings.HasPrefix(path, "/") {
			errs = append(errs, fmt.Errorf("route %q: want \"METHOD /path\"", key))
			continue
		}
		rt := r.Routes[key]
		if !slices.Contains(priorities, rt.Priority) {
			errs = append(errs, fmt.Errorf("route %q: unknown priority %d", key, rt.Priority))
		}
		errs = append(errs, rt.Bucket.validate("route "+key), rt.User.validate("route "+key+": user"))
	}
	return errors.Join(errs...)
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("500ms", "1s").
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"1s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}
