package limit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/microshop/microshop/pkg/problem"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		valid bool
	}{
		{"empty", `{}`, true},
		{"full", `{"adaptive":"vegas","retryAfter":"2s","user":{"rate":10,"burst":20},
			"routes":{"GET /api/v1/products":{"priority":"low","rate":100,"burst":10,"user":{"rate":1,"burst":1}}}}`, true},
		{"every algorithm", `{"adaptive":"none"}`, true},
		{"unknown algorithm", `{"adaptive":"magic"}`, false},
		{"negative retry", `{"retryAfter":"-1s"}`, false},
		{"rate without burst", `{"user":{"rate":10}}`, false},
		{"negative rate", `{"user":{"rate":-1,"burst":1}}`, false},
		{"route without method", `{"routes":{"/api/v1/products":{}}}`, false},
		{"route bucket without burst", `{"routes":{"GET /x":{"rate":3}}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Rules
			if err := json.Unmarshal([]byte(tt.doc), &r); err != nil {
				t.Fatalf("decode: %v", err)
			}
			err := Validate(r)
			if got := err == nil; got != tt.valid {
				t.Errorf("Validate(%s) = %v, want valid %v", tt.doc, err, tt.valid)
			}
		})
	}
}

func TestPriorityJSON(t *testing.T) {
	for _, p := range priorities {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var got Priority
		if err := json.Unmarshal(b, &got); err != nil || got != p {
			t.Errorf("%s round trip: got %v, %v", b, got, err)
		}
	}
	var p Priority
	if err := json.Unmarshal([]byte(`"urgent"`), &p); err == nil {
		t.Error("an unknown priority decoded")
	}
}

// fixed is an Adaptive with a limit set by the test; it refuses above it.
type fixed struct {
	limit, inflight int
}

func (f *fixed) Acquire() (func(bool), bool) {
	if f.inflight >= f.limit {
		return nil, false
	}
	f.inflight++
	return func(bool) { f.inflight-- }, true
}
func (f *fixed) Limit() int { return f.limit }
func (f *fixed) Close()     {}

// server is a router behind l with the routes the tests use; handled
// counts the requests that reached a handler.
type server struct {
	*gin.Engine
	handled atomic.Int64
}

func newServer(l *Limiter) *server {
	gin.SetMode(gin.ReleaseMode)
	s := &server{Engine: gin.New()}
	s.Use(l.Middleware())
	h := func(c *gin.Context) { s.handled.Add(1); c.Status(http.StatusNoContent) }
	for _, p := range []string{"/browse", "/normal", "/checkout", "/admin"} {
		s.GET(p, h)
	}
	return s
}

func (s *server) get(path, user string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	req.Header.Set("X-User", user)
	s.ServeHTTP(rec, req)
	return rec
}

func byHeader(r *http.Request) string { return r.Header.Get("X-User") }

var testRoutes = map[string]Route{
	"GET /browse":   {Priority: Low},
	"GET /checkout": {Priority: High},
	"GET /admin":    {Priority: Critical},
}

// newTestLimiter is a Limiter whose adaptive algorithm is a, on a clock
// that does not move.
func newTestLimiter(t *testing.T, rules Rules, a Adaptive, reg prometheus.Registerer) *Limiter {
	t.Helper()
	rules.Adaptive = None
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l, err := New(Config{User: byHeader, Metrics: reg, Now: func() time.Time { return now }}, rules)
	if err != nil {
		t.Fatal(err)
	}
	if a != nil {
		s := l.state.Load()
		s.adaptive = &counted{Adaptive: a}
	}
	return l
}

// checkRejected checks rec is a problem of status with a Retry-After of
// whole seconds, at least 1.
func checkRejected(t *testing.T, rec *httptest.ResponseRecorder, status int) {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d", rec.Code, status)
	}
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type %q, want %q", ct, problem.ContentType)
	}
	var p problem.Details
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != status {
		t.Errorf("body %s: %v", rec.Body, err)
	}
	ra := rec.Header().Get("Retry-After")
	if ra == "" || strings.TrimLeft(ra, "0123456789") != "" || ra == "0" {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", ra)
	}
}

func TestUserOverBudgetGets429WhileAnotherIsServed(t *testing.T) {
	l := newTestLimiter(t, Rules{User: Bucket{Rate: 1, Burst: 3}}, nil, nil)
	s := newServer(l)
	for i := range 3 {
		if rec := s.get("/normal", "alice"); rec.Code != http.StatusNoContent {
			t.Fatalf("alice's request %d: status %d, want 204", i+1, rec.Code)
		}
	}
	rec := s.get("/normal", "alice")
	checkRejected(t, rec, http.StatusTooManyRequests)
	if got := rec.Header().Get("Retry-After"); got != "1" {
		t.Errorf("Retry-After %q, want 1 (one token a second)", got)
	}
	if rec := s.get("/normal", "bob"); rec.Code != http.StatusNoContent {
		t.Errorf("bob: status %d, want 204 while alice is over her budget", rec.Code)
	}
	if rec := s.get("/normal", ""); rec.Code != http.StatusNoContent {
		t.Errorf("anonymous: status %d, want 204 (no user, no user bucket)", rec.Code)
	}
	if n := s.handled.Load(); n != 5 {
		t.Errorf("%d requests handled, want 5: the refused one must not reach its handler", n)
	}
}

func TestRouteBucket(t *testing.T) {
	rules := Rules{Routes: map[string]Route{"GET /browse": {Priority: Low, Bucket: Bucket{Rate: 0.25, Burst: 2}}}}
	l := newTestLimiter(t, rules, nil, nil)
	s := newServer(l)
	s.get("/browse", "a")
	s.get("/browse", "b")
	rec := s.get("/browse", "c")
	checkRejected(t, rec, http.StatusTooManyRequests)
	if got := rec.Header().Get("Retry-After"); got != "4" {
		t.Errorf("Retry-After %q, want 4 (a token every 4 s)", got)
	}
	if rec := s.get("/normal", "c"); rec.Code != http.StatusNoContent {
		t.Errorf("another route: status %d, want 204", rec.Code)
	}
}

func TestRouteUserBucket(t *testing.T) {
	rules := Rules{Routes: map[string]Route{"GET /checkout": {Priority: High, User: Bucket{Rate: 1, Burst: 1}}}}
	s := newServer(newTestLimiter(t, rules, nil, nil))
	s.get("/checkout", "alice")
	checkRejected(t, s.get("/checkout", "alice"), http.StatusTooManyRequests)
	for _, tc := range []struct{ path, user string }{{"/checkout", "bob"}, {"/normal", "alice"}} {
		if rec := s.get(tc.path, tc.user); rec.Code != http.StatusNoContent {
			t.Errorf("%s by %s: status %d, want 204", tc.path, tc.user, rec.Code)
		}
	}
}

// TestPriorities holds the adaptive limit at 10 with a given number of
// requests in flight and checks which priorities are still admitted.
func TestPriorities(t *testing.T) {
	tests := []struct {
		inflight int
		path     string
		want     int
	}{
		{0, "/browse", http.StatusNoContent},
		{6, "/browse", http.StatusNoContent},
		{7, "/browse", http.StatusServiceUnavailable}, // low: 70 % of the limit
		{7, "/normal", http.StatusNoContent},
		{8, "/normal", http.StatusNoContent},
		{9, "/normal", http.StatusServiceUnavailable}, // normal: 85 %
		{9, "/checkout", http.StatusNoContent},
		{10, "/checkout", http.StatusServiceUnavailable}, // high: the whole limit
		{10, "/admin", http.StatusNoContent},             // critical: never shed
		{50, "/admin", http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			a := &fixed{limit: 10}
			l := newTestLimiter(t, Rules{Routes: testRoutes}, a, nil)
			c := l.state.Load().adaptive
			for range tt.inflight {
				if _, ok := c.acquire(); !ok && tt.inflight <= 10 {
					t.Fatal("could not fill the limiter")
				}
			}
			c.inflight.Store(int64(tt.inflight))
			rec := newServer(l).get(tt.path, "")
			if rec.Code != tt.want {
				t.Errorf("%s with %d/10 in flight: status %d, want %d", tt.path, tt.inflight, rec.Code, tt.want)
			}
			if rec.Code == http.StatusServiceUnavailable {
				checkRejected(t, rec, http.StatusServiceUnavailable)
			}
		})
	}
}

func TestAdaptiveRejectionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := newTestLimiter(t, Rules{Routes: testRoutes, RetryAfter: Duration(2500 * time.Millisecond)}, &fixed{limit: 0}, reg)
	if n := testutil.CollectAndCount(reg, "limiter_rejected_total"); n != 9 {
		t.Errorf("limiter_rejected_total has %d series before any request, want 9 (3 priorities × 3 reasons)", n)
	}
	s := newServer(l)
	rec := s.get("/checkout", "")
	checkRejected(t, rec, http.StatusServiceUnavailable)
	if got := rec.Header().Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After %q, want 3 (2.5 s rounded up)", got)
	}
	if got := testutil.ToFloat64(l.metrics.rejections.WithLabelValues("high", "adaptive")); got != 1 {
		t.Errorf("rejected{high,adaptive} = %v, want 1", got)
	}
	if s.get("/admin", "").Code != http.StatusNoContent {
		t.Error("critical route refused")
	}
	if n := s.handled.Load(); n != 1 {
		t.Errorf("%d handled, want 1 (the admin request only)", n)
	}
}

func TestSetRulesLive(t *testing.T) {
	l := newTestLimiter(t, Rules{}, nil, nil)
	s := newServer(l)
	if s.get("/normal", "alice").Code != http.StatusNoContent {
		t.Fatal("refused without rules")
	}
	if err := l.SetRules(Rules{Adaptive: None, User: Bucket{Rate: 1, Burst: 1}}); err != nil {
		t.Fatal(err)
	}
	s.get("/normal", "alice")
	checkRejected(t, s.get("/normal", "alice"), http.StatusTooManyRequests)
	if err := l.SetRules(Rules{User: Bucket{Rate: 1}}); err == nil {
		t.Error("invalid rules accepted")
	}
	checkRejected(t, s.get("/normal", "alice"), http.StatusTooManyRequests) // the last good rules stay
}

// TestLimitGaugeFollowsTheAlgorithm: limiter_limit is the limit of the
// algorithm in force from the moment its rules are, and 0 once adaptive
// limiting is turned off live — not the last limit of the one it
// replaced (labs/03-overload tells an overload without a limiter by it).
func TestLimitGaugeFollowsTheAlgorithm(t *testing.T) {
	l, err := New(Config{Metrics: prometheus.NewRegistry()}, Rules{Adaptive: Vegas})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := newServer(l)
	tests := []struct {
		name  string
		rules Rules
		want  float64
	}{
		{"vegas", Rules{Adaptive: Vegas}, 20}, // Vegas starts at 20
		{"turned off", Rules{Adaptive: None}, 0},
		{"the default again", Rules{}, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := l.SetRules(tt.rules); err != nil {
				t.Fatal(err)
			}
			s.get("/normal", "") // a request through the rules in force
			if got := testutil.ToFloat64(l.metrics.limit); got != tt.want {
				t.Errorf("limiter_limit = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRulesInForceMetrics: limiter_algorithm names the algorithm each
// Rules document puts in force, and limiter_limit is its limit from then
// on, before any request.
func TestRulesInForceMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	l, err := New(Config{Metrics: reg}, Rules{Adaptive: Vegas})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	for _, alg := range []Algorithm{Vegas, Gradient2, None, Failsafe} {
		if alg != Vegas {
			if err := l.SetRules(Rules{Adaptive: alg}); err != nil {
				t.Fatal(err)
			}
		}
		want := fmt.Sprintf(`
# HELP limiter_algorithm The adaptive algorithm in force: 1 for its name (none: no adaptive limit).
# TYPE limiter_algorithm gauge
limiter_algorithm{algorithm=%q} 1
# HELP limiter_limit The adaptive concurrency limit in force; 0 while the algorithm sets none.
# TYPE limiter_limit gauge
limiter_limit %d
`, alg, l.Limit())
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "limiter_algorithm", "limiter_limit"); err != nil {
			t.Errorf("%s in force: %v", alg, err)
		}
		if ownLimit := alg != None; ownLimit != (l.Limit() > 0) {
			t.Errorf("%s in force: Limit() = %d", alg, l.Limit())
		}
	}
}

// TestAlgorithms is the contract every candidate keeps: it admits a
// first request; and the ones that start with a limit of their own
// (initialLimit, whatever the CPU) refuse the request past it, and give a
// released place again. kratos and sentinel limit only while the
// machine's CPU is busy, which a unit test does not control.
func TestAlgorithms(t *testing.T) {
	tests := []struct {
		alg      Algorithm
		ownLimit bool
	}{
		{Sentinel, false}, {KratosBBR, false}, {Failsafe, true}, {Gradient2, true}, {Vegas, true},
	}
	for _, tt := range tests {
		alg := tt.alg
		t.Run(string(alg), func(t *testing.T) {
			a, err := NewAdaptive(alg)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			release, ok := a.Acquire()
			if !ok {
				t.Fatal("an idle limiter refused a request")
			}
			release(false)
			if got := a.Limit(); got < 0 {
				t.Errorf("Limit() = %d, want ≥ 0", got)
			}
			if !tt.ownLimit {
				return
			}
			if got := a.Limit(); got != initialLimit {
				t.Fatalf("Limit() = %d, want the initial %d", got, initialLimit)
			}
			var releases []func(bool)
			for range a.Limit() {
				r, ok := a.Acquire()
				if !ok {
					t.Fatalf("refused below its limit %d", a.Limit())
				}
				releases = append(releases, r)
			}
			if _, ok := a.Acquire(); ok {
				t.Errorf("admitted past its limit %d", a.Limit())
			}
			releases[0](true)
			if r, ok := a.Acquire(); !ok {
				t.Error("a released place was not given again")
			} else {
				r(false)
			}
			for _, r := range releases[1:] {
				r(false)
			}
		})
	}
	if _, err := NewAdaptive("magic"); err == nil {
		t.Error("unknown algorithm built")
	}
}

func TestSentinelOnePerProcess(t *testing.T) {
	a, err := NewAdaptive(Sentinel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewAdaptive(Sentinel); err == nil {
		t.Error("a second sentinel limiter was built while the first is open")
	}
	a.Close()
	b, err := NewAdaptive(Sentinel)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	b.Close()
}

// TestConcurrent serves requests from many goroutines through every
// algorithm while the rules change, for the race detector; every request
// must be answered 204, 429 or 503, and every admitted one released (the
// in-flight count back to 0).
func TestConcurrent(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			l, err := New(Config{User: byHeader}, Rules{Adaptive: alg, Routes: testRoutes})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			s := newServer(l)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 200 {
						path := []string{"/browse", "/normal", "/checkout", "/admin"}[i%4]
						rec := httptest.NewRecorder()
						req := httptest.NewRequest(http.MethodGet, path, nil)
						req.Header.Set("X-User", strconv.Itoa(g))
						s.ServeHTTP(rec, req)
						if c := rec.Code; c != http.StatusNoContent && c != http.StatusTooManyRequests && c != http.StatusServiceUnavailable {
							t.Errorf("GET %s = %d", path, c)
						}
					}
				})
			}
			wg.Go(func() {
				for range 20 {
					if err := l.SetRules(Rules{Adaptive: alg, User: Bucket{Rate: 1000, Burst: 100}}); err != nil {
						t.Error(err)
					}
				}
			})
			wg.Wait()
			if a := l.state.Load().adaptive; a != nil && a.inflight.Load() != 0 {
				t.Errorf("%d requests still in flight after all were answered", a.inflight.Load())
			}
		})
	}
}
