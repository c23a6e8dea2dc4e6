package labs

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestScrapeSum: sum reads a counter by labels, and a histogram's _count,
// _sum and _bucket series as the exposition format names them.
func TestScrapeSum(t *testing.T) {
	page := `# HELP breaker_transitions_total Transitions.
# TYPE breaker_transitions_total counter
breaker_transitions_total{to="open",upstream="psp"} 3
breaker_transitions_total{to="closed",upstream="psp"} 2
breaker_transitions_total{to="open",upstream="order"} 5
# HELP req Requests.
# TYPE req histogram
req_bucket{http_route="/v1/charges",le="0.5"} 4
req_bucket{http_route="/v1/charges",le="1"} 6
req_bucket{http_route="/v1/charges",le="+Inf"} 9
req_sum{http_route="/v1/charges"} 7.5
req_count{http_route="/v1/charges"} 9
req_bucket{http_route="/v1/refunds",le="0.5"} 1
req_bucket{http_route="/v1/refunds",le="1"} 1
req_bucket{http_route="/v1/refunds",le="+Inf"} 1
req_sum{http_route="/v1/refunds"} 0.25
req_count{http_route="/v1/refunds"} 1
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(page))
	}))
	defer srv.Close()
	m, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"breaker_transitions_total", nil, 10},
		{"breaker_transitions_total", []string{`upstream="psp"`}, 5},
		{"breaker_transitions_total", []string{`upstream="psp"`, `to="open"`}, 3},
		{"breaker_transitions_total", []string{`upstream="payment"`}, 0},
		{"req_count", nil, 10},
		{"req_count", []string{`http_route="/v1/charges"`}, 9},
		{"req_sum", []string{`http_route="/v1/refunds"`}, 0.25},
		{"req_bucket", []string{`http_route="/v1/charges"`, `le="1"`}, 6},
		{"req_bucket", []string{`le="+Inf"`}, 10},
		{"no_such_metric", nil, 0},
	} {
		if got := m.sum(c.name, c.labels...); got != c.want {
			t.Errorf("sum(%q, %q) = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if _, err := scrape(context.Background(), srv.URL+"/nothing"); err == nil {
		t.Error("scrape of a page that is not there: no error")
	}
}
