package upstream_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/discovery"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

// deadAddr returns an address nothing listens on: connections are refused.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestRetries checks over real sockets which failures are retried on the
// other instance — a refused connection and a 503, for a GET or a POST with
// an Idempotency-Key — and which are not, and that retries are counted.
func TestRetries(t *testing.T) {
	var served atomic.Int64
	live := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	defer live.Close()
	draining := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer draining.Close()
	liveAddr := strings.TrimPrefix(live.URL, "http://")
	drainingAddr := strings.TrimPrefix(draining.URL, "http://")
	key := http.Header{"Idempotency-Key": {"k-1"}}

	tests := []struct {
		name       string
		other      string // the instance beside the live one
		method     string
		header     http.Header
		wantStatus int // of every request; 0: an error
		wantReason string
	}{
		{"GET, connection refused", deadAddr(t), "GET", nil, 200, "connection failure"},
		{"GET, 503", drainingAddr, "GET", nil, 200, "503"},
		{"POST with a key, connection refused", deadAddr(t), "POST", key, 200, "connection failure"},
		{"POST without a key, connection refused", deadAddr(t), "POST", nil, 0, ""},
		{"POST without a key, 503", drainingAddr, "POST", nil, 503, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			retries, err := upstream.NewRetries(0.1, 100, reg)
			if err != nil {
				t.Fatal(err)
			}
			b := discovery.NewBalancer("order", discovery.NewStaticResolver(liveAddr, tt.other))
			c, err := upstream.NewBalanced("order", "http://order", b, 5*time.Second, nil, retries)
			if err != nil {
				t.Fatal(err)
			}
			const n = 20 // the balancer picks the other instance first about half the time
			for range n {
				resp, err := c.Do(t.Context(), tt.method, "/v1/x", nil, tt.header, nil)
				if tt.wantStatus == 0 && err == nil && resp.Status != 200 {
					t.Fatalf("answer %d, want 200 or an error", resp.Status)
				}
				if tt.wantStatus != 0 && (err != nil || resp.Status != tt.wantStatus) && tt.wantReason != "" {
					t.Fatalf("answer %d, %v; want %d", resp.Status, err, tt.wantStatus)
				}
			}
			if tt.wantReason == "" {
				if got := testutil.CollectAndCount(retries.Metric()); got != 0 {
					t.Errorf("%d retry series counted, want none", got)
				}
				return
			}
			if testutil.ToFloat64(retries.Metric().WithLabelValues("order", tt.wantReason)) == 0 {
				t.Errorf("no retry counted with reason %q", tt.wantReason)
			}
		})
	}
}

// TestBudget checks that retries stop when the budget is spent: with every
// instance refusing connections, a ratio of 0 and a reserve of 3 allow
// three retries in all: the first request's two, the second's first; the
// second's next retry and every later request's first are refused.
func TestBudget(t *testing.T) {
	retries, err := upstream.NewRetries(0, 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := discovery.NewBalancer("order", discovery.NewStaticResolver(deadAddr(t), deadAddr(t), deadAddr(t)))
	c, err := upstream.NewBalanced("order", "http://order", b, time.Second, nil, retries)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := c.Do(t.Context(), "GET", "/v1/x", nil, nil, nil); !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("Do = %v, want ErrUnavailable", err)
		}
	}
	m := retries.Metric()
	if got := testutil.ToFloat64(m.WithLabelValues("order", "connection failure")); got != 3 {
		t.Errorf("retries sent = %v, want 3", got)
	}
	if got := testutil.ToFloat64(m.WithLabelValues("order", "budget exhausted")); got != 9 {
		t.Errorf("retries refused by the budget = %v, want 9", got)
	}
}

// TestOpenBreakerFailsFast checks that a client behind an open breaker
// returns breaker.ErrOpen without retrying.
func TestOpenBreakerFailsFast(t *testing.T) {
	var calls atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer down.Close()
	breakers, err := breaker.NewSet(breaker.Config{}, map[string]breaker.Rules{"order": {MinRequests: 2, ErrorRatio: 1, OpenFor: breaker.Duration(time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	defer breakers.Close()
	retries, err := upstream.NewRetries(1, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	b := discovery.NewBalancer("order", discovery.NewStaticResolver(strings.TrimPrefix(down.URL, "http://")))
	wrap := func(next http.RoundTripper) http.RoundTripper { return breakers.RoundTripper("order", next) }
	c, err := upstream.NewBalanced("order", "http://order", b, time.Second, wrap, retries)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if resp, err := c.Do(context.Background(), "GET", "/v1/x", nil, nil, nil); err != nil || resp.Status != 500 {
			t.Fatalf("Do = %d, %v; want the 500", resp.Status, err)
		}
	}
	_, err = c.Do(context.Background(), "GET", "/v1/x", nil, nil, nil)
	var open *breaker.OpenError
	if !errors.As(err, &open) || open.RetryAfter <= 0 {
		t.Fatalf("Do with the breaker open = %v, want an OpenError", err)
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("the upstream got %d calls, want 2: none once the breaker opened", got)
	}
}
