// Package loadtest holds the shop's load scenarios, defined once in
// scenarios.json and read by both runners: the k6 scripts in k6/ (run by a
// user's own k6) and Run, our open-loop Go runner (make load SCENARIO=…,
// and smoke-sized in make test).
//
// A scenario is a mix of named requests sent at fixed arrival rates, phase
// after phase (k6's constant-arrival-rate executor), and thresholds on k6's
// metric names that decide whether the run passed.
package loadtest

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed scenarios.json
var scenariosJSON []byte

// Metric names, as k6 has them (the first two are its built-ins; the
// others are the scripts' custom metrics).
const (
	// MetricFailed is the share of requests that failed: no answer, or a
	// status outside 200–399 and the scenario's Shed.
	MetricFailed = "http_req_failed"
	// MetricDuration is each request's duration in milliseconds.
	MetricDuration = "http_req_duration"
	// MetricConfirmed is the share of placed checkouts whose order reached
	// CONFIRMED.
	MetricConfirmed = "checkout_confirmed"
	// MetricCompletion is, for each CONFIRMED checkout, the milliseconds
	// from the order's creation to its confirmation, from its history.
	MetricCompletion = "checkout_completion"
)

// rateMetrics are judged by their rate, the others are trends (milliseconds).
var rateMetrics = []string{MetricFailed, MetricConfirmed}

// Definitions are the contents of scenarios.json.
type Definitions struct {
	// About says what the file is; runners ignore it.
	About string `json:"about"`
	// Customer places the checkouts; Admin restocks before a run that
	// places any.
	Customer Credentials `json:"customer"`
	Admin    Credentials `json:"admin"`
	// Card pays every checkout (a test card of the PSP simulator).
	Card string `json:"card"`
	// SKUs are the products that requests with {sku} pick from at random.
	SKUs []string `json:"skus"`
	// Restock is how many units of each SKU are added before a run that
	// places checkouts, so that the stock does not run out.
	Restock int64 `json:"restock"`
	// Requests are the requests a mix draws from, by name.
	Requests map[string]Request `json:"requests"`
	// Scenarios by name.
	Scenarios map[string]Scenario `json:"scenarios"`
}

// Credentials of a demo user.
type Credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// Request is one kind of request of a mix.
type Request struct {
	Method string `json:"method"`
	// Path may hold {sku}, replaced by one of the SKUs at random.
	Path string `json:"path"`
	// Auth sends the customer's access token.
	Auth bool `json:"auth"`
	// Order sends a one-line order of a random SKU with Card as the body,
	// and a fresh Idempotency-Key; its order is followed until final.
	Order bool `json:"order"`
}

// Scenario is one load scenario.
type Scenario struct {
	Description string `json:"description"`
	// Mix is each request's weight.
	Mix map[string]int `json:"mix"`
	// Phases run one after the other at full size; Smoke is the same
	// shape, seconds long, for make test.
	Phases []Phase `json:"phases"`
	Smoke  []Phase `json:"smoke"`
	// Shed are statuses that count as answered, not failed (a shed
	// request's 429 or 503).
	Shed []int `json:"shed"`
	// Thresholds must all hold for the run to pass.
	Thresholds []Threshold `json:"thresholds"`
}

// Phase is a constant arrival rate for a duration.
type Phase struct {
	// Rate is requests per second.
	Rate int `json:"rate"`
	// Duration is a Go (and k6) duration, e.g. "30s", "2m".
	Duration string `json:"duration"`
}

// Threshold is a condition on a metric, as k6 writes it: the metric (with
// {name:<request>} when Request is set) and the expression "<stat><op><value>".
type Threshold struct {
	Metric string `json:"metric"`
	// Request, if set, narrows the metric to one request of the mix.
	Request string  `json:"request,omitempty"`
	Stat    string  `json:"stat"`
	Op      string  `json:"op"`
	Value   float64 `json:"value"`
}

// Key is the threshold's key in k6's options.thresholds, e.g.
// "http_req_duration{name:checkout}".
func (t Threshold) Key() string {
	if t.Request == "" {
		return t.Metric
	}
	return t.Metric + "{name:" + t.Request + "}"
}

// Expression is the threshold's expression as k6 writes it, e.g. "p(99)<250".
func (t Threshold) Expression() string {
	return t.Stat + t.Op + strconv.FormatFloat(t.Value, 'f', -1, 64)
}

// Holds reports whether got meets the threshold.
func (t Threshold) Holds(got float64) bool {
	switch t.Op {
	case "<":
		return got < t.Value
	case "<=":
		return got <= t.Value
	case ">":
		return got > t.Value
	case ">=":
		return got >= t.Value
	}
	return false
}

// Duration returns the phase's duration.
func (p Phase) duration() time.Duration {
	d, _ := time.ParseDuration(p.Duration) // validated by Parse
	return d
}

// Load returns the embedded scenarios.json, parsed and checked.
func Load() (*Definitions, error) { return Parse(scenariosJSON) }

// Parse reads and checks definitions: unknown fields, unknown requests in
// a mix, bad durations, rates, metrics, statistics and operators are
// errors.
func Parse(b []byte) (*Definitions, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Definitions
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("scenarios: %w", err)
	}
	return &d, nil
}

var (
	percentile = regexp.MustCompile(`^p\((\d{1,2}(\.\d+)?)\)$`)
	skuPattern = regexp.MustCompile(`^[A-Z0-9-]{1,64}$`)
)

func (d *Definitions) validate() error {
	var errs []error
	if len(d.SKUs) == 0 || slices.ContainsFunc(d.SKUs, func(s string) bool { return !skuPattern.MatchString(s) }) {
		errs = append(errs, errors.New("skus: want at least one, each of A-Z, 0-9 and -"))
	}
	for name, r := range d.Requests {
		if r.Method != "GET" && r.Method != "POST" || !strings.HasPrefix(r.Path, "/") {
			errs = append(errs, fmt.Errorf("request %s: want method GET or POST and a path from /", name))
		}
	}
	if len(d.Scenarios) == 0 {
		errs = append(errs, errors.New("no scenario"))
	}
	for _, name := range d.ScenarioNames() {
		s := d.Scenarios[name]
		if len(s.Mix) == 0 {
			errs = append(errs, fmt.Errorf("scenario %s: empty mix", name))
		}
		for req, w := range s.Mix {
			if _, ok := d.Requests[req]; !ok || w < 1 {
				errs = append(errs, fmt.Errorf("scenario %s: mix: %q is not a request, or its weight is below 1", name, req))
			}
		}
		for kind, phases := range map[string][]Phase{"phases": s.Phases, "smoke": s.Smoke} {
			if len(phases) == 0 {
				errs = append(errs, fmt.Errorf("scenario %s: no %s", name, kind))
			}
			for i, p := range phases {
				if d, err := time.ParseDuration(p.Duration); err != nil || d <= 0 || p.Rate < 1 {
					errs = append(errs, fmt.Errorf("scenario %s: %s[%d]: want a rate of at least 1 and a positive duration", name, kind, i))
				}
			}
		}
		for i, t := range s.Thresholds {
			if err := t.validate(d); err != nil {
				errs = append(errs, fmt.Errorf("scenario %s: thresholds[%d]: %w", name, i, err))
			}
		}
	}
	return errors.Join(errs...)
}

func (t Threshold) validate(d *Definitions) error {
	isRate := slices.Contains(rateMetrics, t.Metric)
	switch {
	case !isRate && t.Metric != MetricDuration && t.Metric != MetricCompletion:
		return fmt.Errorf("unknown metric %q", t.Metric)
	case isRate && t.Stat != "rate":
		return fmt.Errorf("%s is a rate: its stat is rate", t.Metric)
	case !isRate && !percentile.MatchString(t.Stat) && !slices.Contains([]string{"avg", "min", "med", "max"}, t.Stat):
		return fmt.Errorf("%s: stat %q: want p(N), avg, min, med or max", t.Metric, t.Stat)
	case !slices.Contains([]string{"<", "<=", ">", ">="}, t.Op):
		return fmt.Errorf("op %q: want <, <=, > or >=", t.Op)
	}
	if _, ok := d.Requests[t.Request]; t.Request != "" && !ok {
		return fmt.Errorf("request %q is not defined", t.Request)
	}
	return nil
}

// ScenarioNames returns the scenarios' names, sorted.
func (d *Definitions) ScenarioNames() []string {
	names := make([]string, 0, len(d.Scenarios))
	for name := range d.Scenarios {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
