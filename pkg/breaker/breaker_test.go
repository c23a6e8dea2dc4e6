package breaker_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/clocktest"
	"github.com/microshop/microshop/pkg/logtest"
)

// Tests in this package do not run in parallel: sentinel's clock is
// process-wide, and each NewSet installs its own.

// outcome is what one call to the upstream does.
type outcome int

const (
	ok     outcome = iota
	fail           // returns an error
	slow           // succeeds after more than the slow-call limit
	cancel         // the caller cancels it
)

var errUpstream = errors.New("upstream failed")

// fixture is a Set on a hand-moved clock with its logs and metrics.
type fixture struct {
	set   *breaker.Set
	clock *clocktest.Clock
	reg   *prometheus.Registry
	logs  *logtest.Buffer
	calls int // calls that reached the upstream
}

func newFixture(t *testing.T, rules map[string]breaker.Rules) *fixture {
	t.Helper()
	f := &fixture{
		clock: clocktest.New(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)),
		reg:   prometheus.NewRegistry(),
		logs:  &logtest.Buffer{},
	}
	set, err := breaker.NewSet(breaker.Config{
		Logger:  slog.New(slog.NewTextHandler(f.logs, nil)),
		Metrics: f.reg,
		Now:     f.clock.Now,
	}, rules)
	if err != nil {
		t.Fatalf("NewSet: %v", err)
	}
	t.Cleanup(set.Close)
	f.set = set
	return f
}

// do makes one call to upstream with outcome o and returns Do's error.
func (f *fixture) do(upstream string, o outcome) error {
	ctx, cancelCtx := context.WithCancel(context.Background())
	defer cancelCtx()
	return f.set.Do(ctx, upstream, func(ctx context.Context) error {
		f.calls++
		switch o {
		case fail:
			return errUpstream
		case slow:
			f.clock.Advance(300 * time.Millisecond)
		case cancel:
			cancelCtx()
			return ctx.Err()
		}
		return nil
	})
}

func (f *fixture) gauge(t *testing.T, upstream string) float64 {
	t.Helper()
	return value(t, f.reg, "breaker_state", map[string]string{"upstream": upstream})
}

// rules of the "psp" upstream used by most tests: four calls decide, half
// of them failing or slow trip it, it stays open 5s.
var pspRules = breaker.Rules{
	Window:      breaker.Duration(10 * time.Second),
	MinRequests: 4,
	ErrorRatio:  0.5,
	SlowCall:    breaker.Duration(200 * time.Millisecond),
	SlowRatio:   0.5,
	OpenFor:     breaker.Duration(5 * time.Second),
}

func TestTrip(t *testing.T) {
	tests := []struct {
		name      string
		outcomes  []outcome
		wantState breaker.State
	}{
		{name: "healthy", outcomes: []outcome{ok, ok, ok, ok, ok, ok}, wantState: breaker.Closed},
		{name: "errors below min requests", outcomes: []outcome{fail, fail, fail}, wantState: breaker.Closed},
		{name: "error ratio reached", outcomes: []outcome{ok, fail, ok, fail}, wantState: breaker.Open},
		{name: "error ratio not reached", outcomes: []outcome{ok, fail, ok, ok, ok}, wantState: breaker.Closed},
		{name: "slow ratio reached", outcomes: []outcome{slow, ok, slow, ok}, wantState: breaker.Open},
		{name: "slow ratio not reached", outcomes: []outcome{slow, ok, ok, ok, ok}, wantState: breaker.Closed},
		{name: "caller cancellations do not count", outcomes: []outcome{cancel, cancel, cancel, ok}, wantState: breaker.Closed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]breaker.Rules{"psp": pspRules})
			for _, o := range tt.outcomes {
				_ = f.do("psp", o)
			}
			if got := f.set.State("psp"); got != tt.wantState {
				t.Errorf("state = %v, want %v", got, tt.wantState)
			}
			if got := f.gauge(t, "psp"); got != float64(tt.wantState) {
				t.Errorf("breaker_state = %v, want %v", got, float64(tt.wantState))
			}
		})
	}
}

// TestOpenFailsFastThenRecovers walks the whole cycle: trip, fail fast with
// the time left, one probe after the open period, closed again.
func TestOpenFailsFastThenRecovers(t *testing.T) {
	f := newFixture(t, map[string]breaker.Rules{"psp": pspRules})
	for _, o := range []outcome{fail, fail, fail, fail} {
		_ = f.do("psp", o)
	}
	if got := f.set.State("psp"); got != breaker.Open {
		t.Fatalf("state after four failures = %v, want open", got)
	}

	f.clock.Advance(2 * time.Second)
	calls := f.calls
	err := f.do("psp", ok)
	var open *breaker.OpenError
	if !errors.As(err, &open) || !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("call while open: %v, want an *OpenError matching ErrOpen", err)
	}
	if diff := cmp.Diff(&breaker.OpenError{Upstream: "psp", RetryAfter: 3 * time.Second}, open); diff != "" {
		t.Errorf("open error mismatch (-want +got):\n%s", diff)
	}
	if f.calls != calls {
		t.Errorf("the upstream was called while the breaker was open")
	}

	f.clock.Advance(3 * time.Second) // the open period is over
	if err := f.do("psp", ok); err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := f.set.State("psp"); got != breaker.Closed {
		t.Errorf("state after a good probe = %v, want closed", got)
	}
	// A fresh window: one failure does not trip it again.
	if err := f.do("psp", fail); !errors.Is(err, errUpstream) {
		t.Errorf("call after closing: %v, want the upstream's error", err)
	}
	if got := f.set.State("psp"); got != breaker.Closed {
		t.Errorf("state after one failure in a fresh window = %v, want closed", got)
	}

	transitions := map[string]float64{}
	for _, to := range []string{"open", "half-open", "closed"} {
		transitions[to] = value(t, f.reg, "breaker_transitions_total", map[string]string{"upstream": "psp", "to": to})
	}
	if diff := cmp.Diff(map[string]float64{"open": 1, "half-open": 1, "closed": 1}, transitions); diff != "" {
		t.Errorf("breaker_transitions_total mismatch (-want +got):\n%s", diff)
	}
	if got := value(t, f.reg, "breaker_rejected_total", map[string]string{"upstream": "psp"}); got != 1 {
		t.Errorf("breaker_rejected_total = %v, want 1", got)
	}
	for _, line := range []string{
		`level=WARN msg="circuit breaker open" upstream=psp from=closed to=open strategy="error ratio" ratio=1 retry_after=5s`,
		`level=INFO msg="circuit breaker half-open" upstream=psp from=open to=half-open`,
		`level=INFO msg="circuit breaker closed" upstream=psp from=half-open to=closed`,
	} {
		if !strings.Contains(f.logs.String(), line) {
			t.Errorf("log lacks %q; log:\n%s", line, f.logs.String())
		}
	}
}

func TestFailedProbeReopens(t *testing.T) {
	tests := []struct {
		name  string
		probe outcome
	}{
		{name: "probe fails", probe: fail},
		{name: "probe slow", probe: slow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]breaker.Rules{"psp": pspRules})
			for range 4 {
				_ = f.do("psp", tt.probe)
			}
			f.clock.Advance(5 * time.Second)
			_ = f.do("psp", tt.probe)
			if got := f.set.State("psp"); got != breaker.Open {
				t.Fatalf("state after a bad probe = %v, want open", got)
			}
			var open *breaker.OpenError
			if err := f.do("psp", ok); !errors.As(err, &open) || open.RetryAfter <= 0 {
				t.Errorf("call after a bad probe: %v, want an *OpenError with time to wait", err)
			}
		})
	}
}

// TestHalfOpenBoundsProbes holds trial calls in flight: no more than Probes
// reach the upstream, the others fail fast; all succeeding closes it.
func TestHalfOpenBoundsProbes(t *testing.T) {
	rules := pspRules
	rules.Probes = 2
	f := newFixture(t, map[string]breaker.Rules{"psp": rules})
	for range 4 {
		_ = f.do("psp", fail)
	}
	f.clock.Advance(5 * time.Second)

	release := make(chan struct{})
	var wg sync.WaitGroup
	started := make(chan struct{}, 2)
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			errs <- f.set.Do(context.Background(), "psp", func(context.Context) error {
				started <- struct{}{}
				<-release
				return nil
			})
		})
	}
	<-started
	<-started
	var open *breaker.OpenError
	err := f.set.Do(context.Background(), "psp", func(context.Context) error {
		t.Error("a third trial call reached the upstream")
		return nil
	})
	if !errors.As(err, &open) || open.RetryAfter != time.Second {
		t.Errorf("third call while two probes are in flight: %v, want an *OpenError retrying after 1s", err)
	}
	if got := f.set.State("psp"); got != breaker.HalfOpen {
		t.Errorf("state with probes in flight = %v, want half-open", got)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("probe: %v", err)
		}
	}
	if got := f.set.State("psp"); got != breaker.Closed {
		t.Errorf("state after two good probes = %v, want closed", got)
	}
}

// TestSetRules changes the rules of a live Set.
func TestSetRules(t *testing.T) {
	stricter := pspRules
	stricter.ErrorRatio = 0.25
	tests := []struct {
		name      string
		rules     map[string]breaker.Rules
		wantState breaker.State // of psp, open before the change
		wantErr   bool
	}{
		{name: "unchanged: stays open", rules: map[string]breaker.Rules{"psp": pspRules}, wantState: breaker.Open},
		{name: "changed: starts closed", rules: map[string]breaker.Rules{"psp": stricter}, wantState: breaker.Closed},
		{name: "removed: no breaker", rules: map[string]breaker.Rules{}, wantState: breaker.Closed},
		{name: "invalid: refused, old rules stay", rules: map[string]breaker.Rules{"psp": {ErrorRatio: 2}}, wantState: breaker.Open, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, map[string]breaker.Rules{"psp": pspRules})
			for range 4 {
				_ = f.do("psp", fail)
			}
			err := f.set.SetRules(tt.rules)
			if (err != nil) != tt.wantErr {
				t.Fatalf("SetRules error = %v, want error %v", err, tt.wantErr)
			}
			if got := f.set.State("psp"); got != tt.wantState {
				t.Errorf("state = %v, want %v", got, tt.wantState)
			}
			if got := f.gauge(t, "psp"); got != float64(tt.wantState) {
				t.Errorf("breaker_state = %v, want %v", got, float64(tt.wantState))
			}
		})
	}
}

// TestThresholdChangeTakesEffect lowers the error ratio live: a mix of calls
// that left the breaker closed under the old rules trips it under the new.
func TestThresholdChangeTakesEffect(t *testing.T) {
	f := newFixture(t, map[string]breaker.Rules{"psp": pspRules})
	mix := []outcome{ok, ok, ok, fail}
	for _, o := range mix {
		_ = f.do("psp", o)
	}
	if got := f.set.State("psp"); got != breaker.Closed {
		t.Fatalf("state at 25%% errors with ratio 0.5 = %v, want closed", got)
	}
	stricter := pspRules
	stricter.ErrorRatio = 0.25
	if err := f.set.SetRules(map[string]breaker.Rules{"psp": stricter}); err != nil {
		t.Fatal(err)
	}
	for _, o := range mix {
		_ = f.do("psp", o)
	}
	if got := f.set.State("psp"); got != breaker.Open {
		t.Errorf("state at 25%% errors with ratio 0.25 = %v, want open", got)
	}
	stricter.Probes = breaker.DefaultProbes // the one field left zero
	if diff := cmp.Diff(map[string]breaker.Rules{"psp": stricter}, f.set.Rules()); diff != "" {
		t.Errorf("rules in force mismatch (-want +got):\n%s", diff)
	}
}

func TestUpstreamWithoutRulesPasses(t *testing.T) {
	f := newFixture(t, map[string]breaker.Rules{"psp": pspRules, "order": {}})
	for _, upstream := range []string{"order", "inventory"} {
		for range 10 {
			if err := f.do(upstream, fail); !errors.Is(err, errUpstream) {
				t.Fatalf("%s: %v, want the upstream's error every time", upstream, err)
			}
		}
	}
}

func TestRoundTripper(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(status)
	}))
	defer srv.Close()
	f := newFixture(t, map[string]breaker.Rules{"psp": pspRules})
	client := &http.Client{Transport: f.set.RoundTripper("psp", nil)}
	get := func() (int, error) {
		resp, err := client.Get(srv.URL)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}

	// Steps in order, on one breaker: two 4xx and two 5xx are half
	// failures of four calls, which trips it.
	steps := []struct {
		name       string
		status     int
		wantStatus int
		wantOpen   bool
	}{
		{name: "4xx is an answer", status: http.StatusPaymentRequired, wantStatus: 402},
		{name: "another 4xx", status: http.StatusConflict, wantStatus: 409},
		{name: "5xx is returned and counted", status: http.StatusBadGateway, wantStatus: 502},
		{name: "another 5xx", status: http.StatusServiceUnavailable, wantStatus: 503},
		{name: "open: no request", status: http.StatusOK, wantOpen: true},
	}
	for _, tt := range steps {
		status = tt.status
		got, err := get()
		if errors.Is(err, breaker.ErrOpen) != tt.wantOpen {
			t.Errorf("%s: error %v, want open %v", tt.name, err, tt.wantOpen)
		}
		if got != tt.wantStatus {
			t.Errorf("%s: status %d, want %d", tt.name, got, tt.wantStatus)
		}
	}
}

func TestValidate(t *testing.T) {
	ms := func(n int) breaker.Duration { return breaker.Duration(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name  string
		rules map[string]breaker.Rules
		want  []string // parts of the error; none: valid
	}{
		{name: "empty", rules: nil},
		{name: "defaults", rules: map[string]breaker.Rules{"order": {ErrorRatio: 0.5}}},
		{name: "ratio 1 is all calls", rules: map[string]breaker.Rules{"order": {ErrorRatio: 1, SlowRatio: 1, SlowCall: ms(1)}}},
		{name: "off", rules: map[string]breaker.Rules{"order": {}}},
		{name: "ratio above 1", rules: map[string]breaker.Rules{"order": {ErrorRatio: 1.5}}, want: []string{"upstream order: errorRatio 1.5 is not in [0, 1]"}},
		{name: "negative ratio", rules: map[string]breaker.Rules{"order": {SlowRatio: -0.1, SlowCall: ms(5)}}, want: []string{"slowRatio -0.1"}},
		{name: "slow ratio without slow call", rules: map[string]breaker.Rules{"psp": {SlowRatio: 0.5}}, want: []string{"upstream psp: slowCall 0s is not in [1ms, 1h0m0s]"}},
		{name: "window too long", rules: map[string]breaker.Rules{"psp": {ErrorRatio: 0.5, Window: breaker.Duration(2 * time.Hour)}}, want: []string{"window 2h0m0s"}},
		{name: "negative open period", rules: map[string]breaker.Rules{"psp": {ErrorRatio: 0.5, OpenFor: ms(-5)}}, want: []string{"openFor -5ms"}},
		{name: "too many probes", rules: map[string]breaker.Rules{"psp": {ErrorRatio: 0.5, Probes: 5000}}, want: []string{"probes 5000"}},
		{name: "empty upstream", rules: map[string]breaker.Rules{"": {ErrorRatio: 0.5}}, want: []string{"empty upstream name"}},
		{
			name:  "every problem named",
			rules: map[string]breaker.Rules{"order": {ErrorRatio: 3}, "psp": {SlowRatio: 0.5}},
			want:  []string{"upstream order: errorRatio 3", "upstream psp: slowCall"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := breaker.Validate(tt.rules)
			if (err != nil) != (len(tt.want) > 0) {
				t.Fatalf("Validate = %v, want error containing %q", err, tt.want)
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q lacks %q", err, part)
				}
			}
		})
	}
}

func TestRulesJSON(t *testing.T) {
	doc := `{"window":"10s","minRequests":20,"errorRatio":0.5,"slowCall":"500ms","slowRatio":0.8,"openFor":"5s","probes":3}`
	var got breaker.Rules
	if err := json.Unmarshal([]byte(doc), &got); err != nil {
		t.Fatal(err)
	}
	want := breaker.Rules{
		Window: breaker.Duration(10 * time.Second), MinRequests: 20, ErrorRatio: 0.5,
		SlowCall: breaker.Duration(500 * time.Millisecond), SlowRatio: 0.8, OpenFor: breaker.Duration(5 * time.Second), Probes: 3,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded mismatch (-want +got):\n%s", diff)
	}
	back, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(back) != doc {
		t.Errorf("encoded = %s, want %s", back, doc)
	}
	for _, bad := range []string{`{"window":10}`, `{"window":"ten seconds"}`} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("decoding %s succeeded, want an error", bad)
		}
	}
}

// value returns the value of the series of name with labels in reg, 0 if
// there is none.
func value(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			if cmp.Equal(labels, got) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
