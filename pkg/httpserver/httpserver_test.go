package httpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/problem"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestRouterAnswersProblems(t *testing.T) {
	r := httpserver.NewRouter(discard(), health.New(0))
	r.GET("/boom", func(*gin.Context) { panic("bug") })
	r.GET("/only-get", func(c *gin.Context) { c.Status(http.StatusNoContent) })

	t.Run("health endpoints answer JSON", func(t *testing.T) {
		for _, path := range []string{"/healthz", "/readyz"} {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
			if rec.Code != http.StatusOK {
				t.Errorf("GET %s: status = %d, want %d", path, rec.Code, http.StatusOK)
			}
			if got := rec.Header().Get("Content-Type"); got != "application/json" {
				t.Errorf("GET %s: Content-Type = %q, want %q", path, got, "application/json")
			}
		}
	})

	problems := []struct {
		method, path string
		wantStatus   int
	}{
		{http.MethodGet, "/nowhere", http.StatusNotFound},
		{http.MethodPost, "/only-get", http.StatusMethodNotAllowed},
		{http.MethodGet, "/boom", http.StatusInternalServerError},
	}
	for _, tt := range problems {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if got := rec.Header().Get("Content-Type"); got != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", got, problem.ContentType)
			}
			var p problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tt.wantStatus {
				t.Errorf("body %q is not a problem with status %d (err %v)", rec.Body.String(), tt.wantStatus, err)
			}
		})
	}
}

// startServe runs Serve on a free port and returns its address and result channel.
func startServe(t *testing.T, ctx context.Context, cfg httpserver.Config, h http.Handler, checks *health.Checks) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- httpserver.Serve(ctx, discard(), cfg, h, checks) }()
	wait, stop := context.WithTimeout(t.Context(), 5*time.Second)
	defer stop()
	poll.Until(wait, t, "Serve listening", func() bool {
		c, err := net.Dial("tcp", cfg.Addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cfg.Addr, done
}

func TestServeDrainsInFlightRequests(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})
	checks := health.New(0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := startServe(t, ctx, httpserver.Config{ShutdownTimeout: 5 * time.Second}, h, checks)

	type result struct {
		body string
		err  error
	}
	inFlight := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/slow")
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{string(b), err}
	}()
	<-started
	cancel()

	// Shutdown has begun once the listener refuses new connections.
	wait, stop := context.WithTimeout(t.Context(), 5*time.Second)
	defer stop()
	poll.Until(wait, t, "the listener closed", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if got := checks.Check(context.Background()).Status; got != health.StatusDraining {
		t.Errorf("readiness during shutdown = %q, want %q", got, health.StatusDraining)
	}
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v before the in-flight request finished", err)
	default:
	}
	close(release)

	if got := <-inFlight; got.err != nil || got.body != "finished" {
		t.Errorf("in-flight request = %q, %v; want it to finish", got.body, got.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil after a clean drain", err)
	}
}

func TestServeGivesUpAfterShutdownTimeout(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
	})
	ctx, cancel := context.WithCancel(context.Background())
	addr, done := startServe(t, ctx, httpserver.Config{ShutdownTimeout: 50 * time.Millisecond}, h, health.New(0))
	go http.Get("http://" + addr + "/stuck")
	<-started
	cancel()
	err := <-done
	if err == nil || !strings.Contains(err.Error(), "drain http requests") {
		t.Fatalf("Serve = %v, want a drain error", err)
	}
}

func TestServeReportsListenError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = httpserver.Serve(context.Background(), discard(), httpserver.Config{Addr: ln.Addr().String()}, http.NotFoundHandler(), health.New(0))
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Fatalf("Serve = %v, want a listen error naming the address", err)
	}
}

func TestRouterLogsEveryRequestOnce(t *testing.T) {
	var buf strings.Builder
	r := httpserver.NewRouter(slog.New(slog.NewJSONHandler(&buf, nil)), health.New(0))
	r.GET("/orders/:id", func(c *gin.Context) {
		httpserver.AddLogAttrs(c, slog.String("customer_id", "cus_alice"))
		c.String(http.StatusOK, "hello")
	})
	r.GET("/boom", func(*gin.Context) { panic("bug") })

	tests := []struct {
		name, target, requestID string
		wantEcho                bool           // the request's id is kept
		want                    map[string]any // of the log line; request_id checked apart
	}{
		{"route template, added attrs", "/orders/o-123?token=secret-token", "req-1", true,
			map[string]any{"level": "INFO", "msg": "http request", "method": "GET", "route": "/orders/:id", "status": 200.0, "bytes": 5.0, "customer_id": "cus_alice"}},
		{"no route", "/nowhere/secret-token", "", false,
			map[string]any{"level": "INFO", "msg": "http request", "method": "GET", "route": "(no route)", "status": 404.0}},
		{"panic", "/boom", "bad id with spaces", false,
			map[string]any{"level": "ERROR", "msg": "http request", "method": "GET", "route": "/boom", "status": 500.0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf.Reset()
			req := httptest.NewRequest(http.MethodGet, tt.target, nil)
			if tt.requestID != "" {
				req.Header.Set(httpserver.RequestIDHeader, tt.requestID)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)

			var lines []map[string]any
			for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
				var m map[string]any
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("log line %q: %v", l, err)
				}
				if m["msg"] == "http request" {
					lines = append(lines, m)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("access log lines = %d, want 1:\n%s", len(lines), buf.String())
			}
			got := lines[0]
			id := rec.Header().Get(httpserver.RequestIDHeader)
			if id == "" || (id == tt.requestID) != tt.wantEcho {
				t.Errorf("response %s = %q for a request with %q; want it kept: %v", httpserver.RequestIDHeader, id, tt.requestID, tt.wantEcho)
			}
			if got["request_id"] != id {
				t.Errorf("logged request_id = %v, want the response's %q", got["request_id"], id)
			}
			if d, ok := got["duration"].(float64); !ok || d < 0 {
				t.Errorf("duration = %v, want a non-negative number", got["duration"])
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
			if strings.Contains(buf.String(), "secret-token") {
				t.Errorf("the raw path or query leaked into the log:\n%s", buf.String())
			}
		})
	}
}

func TestRequestIDReachesTheHandlersContext(t *testing.T) {
	r := httpserver.NewRouter(discard(), health.New(0))
	r.GET("/id", func(c *gin.Context) { c.String(http.StatusOK, httpserver.RequestID(c.Request.Context())) })
	req := httptest.NewRequest(http.MethodGet, "/id", nil)
	req.Header.Set(httpserver.RequestIDHeader, "0190-abc_d.e")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	if got := rec.Body.String(); got != "0190-abc_d.e" {
		t.Errorf("RequestID in the handler = %q, want the header's", got)
	}
}
