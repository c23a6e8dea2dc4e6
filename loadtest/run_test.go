package loadtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseRefusesBadDefinitions(t *testing.T) {
	good := func() map[string]any {
		var m map[string]any
		if err := json.Unmarshal(scenariosJSON, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	scenario := func(m map[string]any, name string) map[string]any {
		return m["scenarios"].(map[string]any)[name].(map[string]any)
	}
	cases := []struct {
		name, want string
		edit       func(m map[string]any)
	}{
		{"unknown field", "unknown field", func(m map[string]any) { m["colour"] = "blue" }},
		{"unknown request in a mix", "is not a request", func(m map[string]any) {
			scenario(m, "browse")["mix"] = map[string]any{"buy-everything": 1}
		}},
		{"bad duration", "positive duration", func(m map[string]any) {
			scenario(m, "soak")["phases"] = []any{map[string]any{"rate": 5, "duration": "forever"}}
		}},
		{"no smoke phases", "no smoke", func(m map[string]any) { delete(scenario(m, "spike"), "smoke") }},
		{"unknown metric", "unknown metric", func(m map[string]any) {
			scenario(m, "browse")["thresholds"] = []any{map[string]any{"metric": "happiness", "stat": "rate", "op": ">", "value": 1}}
		}},
		{"a rate judged by a percentile", "is a rate", func(m map[string]any) {
			scenario(m, "browse")["thresholds"] = []any{map[string]any{"metric": "http_req_failed", "stat": "p(99)", "op": "<", "value": 1}}
		}},
		{"bad operator", "op", func(m map[string]any) {
			scenario(m, "browse")["thresholds"] = []any{map[string]any{"metric": "http_req_duration", "stat": "p(99)", "op": "=~", "value": 1}}
		}},
		{"threshold on an unknown request", "not defined", func(m map[string]any) {
			scenario(m, "browse")["thresholds"] = []any{map[string]any{"metric": "http_req_duration", "request": "teleport", "stat": "max", "op": "<", "value": 1}}
		}},
	}
	if _, err := Parse(scenariosJSON); err != nil {
		t.Fatalf("the shipped scenarios.json: %v", err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := good()
			c.edit(m)
			b, _ := json.Marshal(m)
			_, err := Parse(b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Parse = %v, want an error saying %q", err, c.want)
			}
		})
	}
}

func TestStat(t *testing.T) {
	values := []float64{5, 1, 4, 2, 3} // 1..5 unsorted
	for _, c := range []struct {
		stat string
		want float64
	}{{"avg", 3}, {"min", 1}, {"max", 5}, {"med", 3}, {"p(50)", 3}, {"p(90)", 4.6}, {"p(99)", 4.96}} {
		if got := stat(c.stat, values); got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("stat(%s) = %v, want %v", c.stat, got, c.want)
		}
	}
}

// fakeShop is just enough of the gateway for the runner: login, products,
// images, stock adjustments, orders that are CONFIRMED on their second
// read. failList makes the product list answer 500.
type fakeShop struct {
	failList bool

	mu       sync.Mutex
	reads    map[string]int
	restocks int
	keys     map[string]bool
}

func (f *fakeShop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/v1/login":
		fmt.Fprint(w, `{"access_token":"t"}`)
	case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/stock-adjustments"):
		f.restocks++
		fmt.Fprint(w, `{}`)
	case r.Method == "GET" && r.URL.Path == "/api/v1/products":
		if f.failList {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprint(w, `{"items":[]}`)
	case r.Method == "POST" && r.URL.Path == "/api/v1/orders":
		key := r.Header.Get("Idempotency-Key")
		if r.Header.Get("Authorization") != "Bearer t" || key == "" || f.keys[key] {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.keys[key] = true
		id := fmt.Sprintf("ord-%d", len(f.keys))
		f.reads[id] = 0
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `{"id":%q}`, id)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/v1/orders/"):
		id := strings.TrimPrefix(r.URL.Path, "/api/v1/orders/")
		f.reads[id]++
		status := "PENDING"
		if f.reads[id] > 1 {
			status = "CONFIRMED"
		}
		created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		fmt.Fprintf(w, `{"status":%q,"created_at":%q,"updated_at":%q}`, status,
			created.Format(time.RFC3339Nano), created.Add(120*time.Millisecond).Format(time.RFC3339Nano))
	default:
		fmt.Fprint(w, `{}`)
	}
}

func TestRunFollowsCheckoutsAndJudgesThresholds(t *testing.T) {
	defs, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	shop := &fakeShop{reads: map[string]int{}, keys: map[string]bool{}}
	srv := httptest.NewServer(shop)
	defer srv.Close()

	r, err := Run(t.Context(), defs, "checkout", Options{BaseURL: srv.URL, Smoke: true, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if shop.restocks != len(defs.SKUs) {
		t.Errorf("restocked %d SKUs, want %d", shop.restocks, len(defs.SKUs))
	}
	// 8/s for 3 s: at most 24 requests, fewer when the machine is too busy
	// for the pacer's last ticks; drawn in turn from the cycle of the mix
	// 2:2:1.
	sent := r.Requests["checkout"] + r.Requests["get-product"] + r.Requests["list-orders"]
	if sent < 12 || sent > 24 {
		t.Errorf("sent %d requests at 8/s for 3 s, want 12 to 24", sent)
	}
	want := map[string]int{}
	cycle := mixOf(defs.Scenarios["checkout"])
	for i := range sent {
		want[cycle[i%len(cycle)]]++
	}
	for name, n := range want {
		if r.Requests[name] != n {
			t.Errorf("%s sent %d times, want %d of %d (the mix's cycle %v)", name, r.Requests[name], n, sent, cycle)
		}
	}
	var inWindows, total int
	for _, w := range r.Windows {
		inWindows += w.Requests
	}
	for _, n := range r.Requests {
		total += n
	}
	if len(r.Windows) < 3 || len(r.Windows) > 5 || inWindows != total {
		t.Errorf("%d windows of 1 s over a 3 s run holding %d requests; want 3 to 5 (the last orders' reads) holding all %d", len(r.Windows), inWindows, total)
	}
	if r.Checkouts != want["checkout"] || r.Confirmed != r.Checkouts || r.Requests[followRequest] != 2*r.Checkouts {
		t.Errorf("checkouts %d, confirmed %d, order reads %d; want %d, all confirmed, two reads each",
			r.Checkouts, r.Confirmed, r.Requests[followRequest], want["checkout"])
	}
	for _, o := range r.Outcomes {
		if o.Samples == 0 || !o.Passed {
			t.Errorf("%s %s: got %v over %d samples, passed %v; want judged and passed", o.Key(), o.Expression(), o.Got, o.Samples, o.Passed)
		}
		if o.Metric == MetricCompletion && o.Got != 120 {
			t.Errorf("checkout_completion %s = %v, want 120 (the orders' own timestamps)", o.Stat, o.Got)
		}
	}

	shop.failList = true
	r, err = Run(t.Context(), defs, "browse", Options{BaseURL: srv.URL, Smoke: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Passed() {
		t.Errorf("browse passed with every product list failing:\n%s", r)
	}

	// Phases run back to back, each at its own rate: 5, 40 and 5 a second.
	shop.failList = false
	r, err = Run(t.Context(), defs, "spike", Options{BaseURL: srv.URL, Smoke: true})
	if err != nil {
		t.Fatal(err)
	}
	sent = 0
	for name, n := range r.Requests {
		if name != followRequest {
			sent += n
		}
	}
	if sent < 40 || sent > 50 {
		t.Errorf("spike sent %d requests, want at most 5 + 40 + 5 and more than the 40/s phase alone could send in its second:\n%s", sent, r)
	}
}
