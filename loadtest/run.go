package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Options configure Run.
type Options struct {
	// BaseURL is the gateway's, e.g. "http://127.0.0.1:8080".
	BaseURL string
	// Smoke runs the scenario's Smoke phases instead of its Phases.
	Smoke bool
	// Log, if not nil, receives a line per phase.
	Log io.Writer
	// Timeout bounds each request; zero means 10 s.
	Timeout time.Duration
	// Follow bounds how long a placed order is followed to its final
	// status; zero means 30 s.
	Follow time.Duration
	// Window, if not zero, also reports the requests, failures and p99 of
	// each window of this length (a soak's figures over time).
	Window time.Duration
}

// Report is what a run measured and whether its thresholds held.
type Report struct {
	Scenario string
	// Requests is how many were sent, by request name; Statuses counts the
	// answers by status (0: no answer).
	Requests map[string]int
	Statuses map[int]int
	// Checkouts is how many orders were accepted, Confirmed how many of
	// them reached CONFIRMED within Options.Follow.
	Checkouts, Confirmed int
	// Elapsed is the attack's wall time, phases back to back.
	Elapsed time.Duration
	// Outcomes are the scenario's thresholds, judged.
	Outcomes []Outcome
	// Windows are the run's figures per Options.Window, in order.
	Windows []Window
}

// Window is the figures of the requests sent within one window of a run.
type Window struct {
	// Start is the window's start from the run's.
	Start    time.Duration
	Requests int
	Failed   int
	// P99 is the 99th percentile of their durations, in milliseconds.
	P99 float64
}

// Outcome is one threshold's verdict.
type Outcome struct {
	Threshold
	// Got is the measured value; Samples how many values it is of. A
	// threshold with no sample is not judged (as in k6) and Passed is true.
	Got     float64
	Samples int
	Passed  bool
}

// Passed reports whether every threshold held.
func (r *Report) Passed() bool {
	for _, o := range r.Outcomes {
		if !o.Passed {
			return false
		}
	}
	return true
}

// String is the report as a few lines of text.
func (r *Report) String() string {
	var b strings.Builder
	total := 0
	for _, n := range r.Requests {
		total += n
	}
	fmt.Fprintf(&b, "scenario %s: %d requests in %v %v, statuses %v; %d checkouts accepted, %d confirmed\n",
		r.Scenario, total, r.Elapsed.Round(time.Millisecond), r.Requests, r.Statuses, r.Checkouts, r.Confirmed)
	for _, w := range r.Windows {
		fmt.Fprintf(&b, "  from %8v: %6d requests, %4d failed, p99 %8.2f ms\n", w.Start, w.Requests, w.Failed, w.P99)
	}
	for _, o := range r.Outcomes {
		verdict := "ok"
		switch {
		case o.Samples == 0:
			verdict = "no samples"
		case !o.Passed:
			verdict = "BREACHED"
		}
		fmt.Fprintf(&b, "  %-40s %-12s got %-12s over %6d samples: %s\n", o.Key(), o.Expression(),
			strconv.FormatFloat(o.Got, 'f', 4, 64), o.Samples, verdict)
	}
	return b.String()
}

// sample is one request's measurement.
type sample struct {
	request string
	failed  bool
	ms      float64
	sent    time.Time
}

// Run sends scenario name of d to opts.BaseURL, open loop: each phase's
// requests are sent at its rate whether or not the earlier ones were
// answered. Orders placed are followed until final. It returns an error
// only if the run could not be made (unknown scenario, no login); a
// breached threshold is in the report.
func Run(ctx context.Context, d *Definitions, name string, opts Options) (*Report, error) {
	s, ok := d.Scenarios[name]
	if !ok {
		return nil, fmt.Errorf("no scenario %q; defined: %v", name, d.ScenarioNames())
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Follow == 0 {
		opts.Follow = 30 * time.Second
	}
	base := strings.TrimSuffix(opts.BaseURL, "/")
	client := &http.Client{Timeout: opts.Timeout}
	token, err := login(ctx, client, base, d.Customer)
	if err != nil {
		return nil, err
	}
	mix := mixOf(s)
	if slices.ContainsFunc(mix, func(r string) bool { return d.Requests[r].Order }) {
		if err := restock(ctx, client, base, d); err != nil {
			return nil, err
		}
	}

	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	var seq atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		n := seq.Add(1) - 1
		req := d.Requests[mix[n%uint64(len(mix))]]
		sku := d.SKUs[(n/uint64(len(mix)))%uint64(len(d.SKUs))]
		t.Method = req.Method
		t.URL = base + strings.ReplaceAll(req.Path, "{sku}", sku)
		t.Header = http.Header{}
		if req.Auth {
			t.Header.Set("Authorization", "Bearer "+token)
		}
		if req.Order {
			t.Header.Set("Content-Type", "application/json")
			t.Header.Set("Idempotency-Key", fmt.Sprintf("load-%s-%d", runID, n))
			t.Body = orderBody(d.Card, sku)
		}
		return nil
	}
	names := requestMatcher(d, s)

	phases := s.Phases
	if opts.Smoke {
		phases = s.Smoke
	}
	report := &Report{Scenario: name, Requests: map[string]int{}, Statuses: map[int]int{}}
	var samples []sample
	var follow sync.WaitGroup
	var mu sync.Mutex
	var completions []float64
	followSlots := make(chan struct{}, 64)
	start := time.Now()
	for i, p := range phases {
		// An attacker serves one attack: its end stops the attacker for good.
		attacker := vegeta.NewAttacker(vegeta.Timeout(opts.Timeout), vegeta.KeepAlive(true),
			vegeta.Workers(16), vegeta.MaxWorkers(4096), vegeta.MaxBody(64<<10))
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "%s phase %d/%d: %d/s for %s\n", name, i+1, len(phases), p.Rate, p.Duration)
		}
		results := attacker.Attack(vegeta.Targeter(targeter), vegeta.ConstantPacer{Freq: p.Rate, Per: time.Second}, p.duration(), name)
	loop:
		for {
			select {
			case <-ctx.Done():
				attacker.Stop()
				return nil, ctx.Err()
			case r, ok := <-results:
				if !ok {
					break loop
				}
				reqName := names(r.Method, r.URL)
				report.Requests[reqName]++
				report.Statuses[int(r.Code)]++
				failed := r.Error != "" || r.Code < 200 || r.Code > 399
				if slices.Contains(s.Shed, int(r.Code)) {
					failed = false
				}
				mu.Lock()
				samples = append(samples, sample{reqName, failed, float64(r.Latency) / float64(time.Millisecond), r.Timestamp})
				mu.Unlock()
				if d.Requests[reqName].Order && (r.Code == http.StatusAccepted || r.Code == http.StatusOK) {
					var o struct{ ID string }
					if json.Unmarshal(r.Body, &o) != nil || o.ID == "" {
						continue
					}
					report.Checkouts++
					follow.Go(func() {
						followSlots <- struct{}{}
						defer func() { <-followSlots }()
						ms, confirmed := followOrder(ctx, client, base, token, o.ID, opts.Follow, func(sm sample) {
							mu.Lock()
							defer mu.Unlock()
							samples = append(samples, sm)
						})
						mu.Lock()
						defer mu.Unlock()
						if confirmed {
							report.Confirmed++
							completions = append(completions, ms)
						}
					})
				}
			}
		}
	}
	report.Elapsed = time.Since(start)
	follow.Wait()
	for _, sm := range samples {
		if sm.request == followRequest {
			report.Requests[followRequest]++
		}
	}
	if opts.Window > 0 {
		report.Windows = windows(samples, start, opts.Window)
	}

	for _, t := range s.Thresholds {
		o := Outcome{Threshold: t}
		switch t.Metric {
		case MetricFailed:
			var failed int
			for _, sm := range samples {
				if t.Request == "" || sm.request == t.Request {
					o.Samples++
					if sm.failed {
						failed++
					}
				}
			}
			if o.Samples > 0 {
				o.Got = float64(failed) / float64(o.Samples)
			}
		case MetricDuration:
			var ms []float64
			for _, sm := range samples {
				if t.Request == "" || sm.request == t.Request {
					ms = append(ms, sm.ms)
				}
			}
			o.Samples, o.Got = len(ms), stat(t.Stat, ms)
		case MetricConfirmed:
			o.Samples = report.Checkouts
			if o.Samples > 0 {
				o.Got = float64(report.Confirmed) / float64(report.Checkouts)
			}
		case MetricCompletion:
			o.Samples, o.Got = len(completions), stat(t.Stat, completions)
		}
		o.Passed = o.Samples == 0 || t.Holds(o.Got)
		report.Outcomes = append(report.Outcomes, o)
	}
	return report, nil
}

// windows groups samples by when they were sent, per window from start.
func windows(samples []sample, start time.Time, window time.Duration) []Window {
	var out []Window
	var ms [][]float64
	for _, sm := range samples {
		i := int(sm.sent.Sub(start) / window)
		if i < 0 {
			i = 0
		}
		for len(out) <= i {
			out = append(out, Window{Start: time.Duration(len(out)) * window})
			ms = append(ms, nil)
		}
		out[i].Requests++
		if sm.failed {
			out[i].Failed++
		}
		ms[i] = append(ms[i], sm.ms)
	}
	for i := range out {
		out[i].P99 = stat("p(99)", ms[i])
	}
	return out
}

// mixOf spreads the mix's requests over one cycle of the total weight,
// each request's slots as evenly as its weight allows (the k6 scripts
// build the same cycle): request n of a run is cycle[n % len(cycle)].
func mixOf(s Scenario) []string {
	names := make([]string, 0, len(s.Mix))
	for name := range s.Mix {
		names = append(names, name)
	}
	sort.Strings(names)
	var cycle []string
	for _, name := range names {
		for range s.Mix[name] {
			cycle = append(cycle, name)
		}
	}
	return cycle
}

// requestMatcher returns a func that names the request a result was for,
// from its method and URL.
func requestMatcher(d *Definitions, s Scenario) func(method, url string) string {
	type pattern struct {
		name, method string
		path         *regexp.Regexp
	}
	var patterns []pattern
	for name := range s.Mix {
		r := d.Requests[name]
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(r.Path), regexp.QuoteMeta("{sku}"), "[A-Z0-9-]+") + "$"
		patterns = append(patterns, pattern{name, r.Method, regexp.MustCompile(re)})
	}
	return func(method, url string) string {
		path := url
		if i := strings.Index(url, "://"); i >= 0 {
			if j := strings.Index(url[i+3:], "/"); j >= 0 {
				path = url[i+3+j:]
			}
		}
		for _, p := range patterns {
			if p.method == method && p.path.MatchString(path) {
				return p.name
			}
		}
		return method + " " + path
	}
}

func orderBody(card, sku string) []byte {
	b, _ := json.Marshal(map[string]any{"card_number": card, "lines": []map[string]any{{"sku": sku, "quantity": 1}}})
	return b
}

// call sends a JSON request and decodes a 2xx answer into out.
func call(ctx context.Context, c *http.Client, method, url, token string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func login(ctx context.Context, c *http.Client, base string, u Credentials) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(ctx, c, http.MethodPost, base+"/api/v1/login", "", u, &tok); err != nil {
		return "", fmt.Errorf("log in as %s: %w", u.Username, err)
	}
	return tok.AccessToken, nil
}

// restock adds d.Restock units of each SKU, as the admin.
func restock(ctx context.Context, c *http.Client, base string, d *Definitions) error {
	token, err := login(ctx, c, base, d.Admin)
	if err != nil {
		return err
	}
	for _, sku := range d.SKUs {
		if err := call(ctx, c, http.MethodPost, base+"/api/v1/admin/products/"+sku+"/stock-adjustments", token,
			map[string]int64{"delta": d.Restock}, nil); err != nil {
			return fmt.Errorf("restock: %w", err)
		}
	}
	return nil
}

// followRequest names the reads of a placed order in the samples (the k6
// scripts tag theirs the same).
const followRequest = "follow-order"

// followOrder reads the order until it is final or within is over; it
// returns whether it was CONFIRMED and the milliseconds from its creation
// to its confirmation, by its own timestamps. Each read is recorded: k6
// counts them in its http_req_ metrics too.
func followOrder(ctx context.Context, c *http.Client, base, token, id string, within time.Duration, record func(sample)) (float64, bool) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		var o struct {
			Status    string    `json:"status"`
			CreatedAt time.Time `json:"created_at"`
			UpdatedAt time.Time `json:"updated_at"`
		}
		start := time.Now()
		err := call(ctx, c, http.MethodGet, base+"/api/v1/orders/"+id, token, nil, &o)
		if ctx.Err() != nil {
			return 0, false // not an answer: the follow ran out
		}
		record(sample{followRequest, err != nil, float64(time.Since(start)) / float64(time.Millisecond), start})
		if err == nil && o.Status != "PENDING" {
			return float64(o.UpdatedAt.Sub(o.CreatedAt)) / float64(time.Millisecond), o.Status == "CONFIRMED"
		}
		select {
		case <-ctx.Done():
			return 0, false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stat computes a trend statistic as k6 does: p(N) by linear interpolation
// between the closest ranks, avg, min, med, max.
func stat(name string, values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	v := slices.Clone(values)
	sort.Float64s(v)
	switch name {
	case "avg":
		var sum float64
		for _, x := range v {
			sum += x
		}
		return sum / float64(len(v))
	case "min":
		return v[0]
	case "max":
		return v[len(v)-1]
	case "med":
		return percentileOf(v, 50)
	}
	m := percentile.FindStringSubmatch(name)
	p, _ := strconv.ParseFloat(m[1], 64)
	return percentileOf(v, p)
}

func percentileOf(sorted []float64, p float64) float64 {
	rank := p / 100 * float64(len(sorted)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return sorted[lo] + (sorted[hi]-sorted[lo])*(rank-float64(lo))
}
