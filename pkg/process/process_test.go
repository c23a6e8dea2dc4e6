package process_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/pkg/telemetry/jaegertest"
)

// start reads a Process's configuration from vars, starts it with a route
// GET /hello of its own, and runs it until stop is called or the test ends.
// It returns the base URLs of the HTTP server and of the admin server (""
// if none); stop stops and closes the Process, once.
func start(t *testing.T, vars map[string]string, log *slog.Logger) (base, admin string, stop func()) {
	t.Helper()
	getenv := func(k string) string { return vars[k] }
	env := config.New(getenv, "P_")
	cfg := process.ReadConfig(env, "127.0.0.1:0")
	cfg.Limit = process.ReadLimit(env)
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	p, err := process.Start(t.Context(), "hello", cfg, getenv, log)
	if err != nil {
		t.Fatal(err)
	}
	p.Router.GET("/hello", func(c *gin.Context) {
		log.InfoContext(c, "saying hello")
		c.String(http.StatusOK, "hello")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Cleanup(stop)
	base = "http://" + cfg.HTTP.Addr
	ready, cancelReady := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelReady()
	poll.UntilNil(ready, t, "the process serving", func() error { _, err := get(base + "/healthz"); return err })
	if cfg.AdminAddr != "" {
		admin = "http://" + cfg.AdminAddr
	}
	return base, admin, stop
}

func get(url string) (*http.Response, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	resp.Body = io.NopCloser(strings.NewReader(string(body)))
	return resp, err
}

func body(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestServes checks what every process serves besides its own routes:
// health, metrics with the RED histogram of its routes and the Go runtime,
// and the profiler only on the admin address, only when one is configured.
func TestServes(t *testing.T) {
	t.Run("admin address", func(t *testing.T) {
		base, admin, _ := start(t, map[string]string{
			"P_HTTP_ADDR": servicetest.FreeAddr(t), "P_ADMIN_ADDR": servicetest.FreeAddr(t),
		}, slog.New(slog.DiscardHandler))
		if code, _ := body(t, base+"/hello"); code != http.StatusOK {
			t.Fatalf("GET /hello = %d", code)
		}
		code, metrics := body(t, base+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics = %d", code)
		}
		for _, want := range []string{
			`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_class="2xx",http_route="/hello"} 1`,
			"go_goroutines ",
			"process_cpu_seconds_total ",
		} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}
		if code, index := body(t, admin+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(index, "goroutine") {
			t.Errorf("admin GET /debug/pprof/ = %d %.80q, want 200 with the profiles", code, index)
		}
		if code, _ := body(t, base+"/debug/pprof/"); code != http.StatusNotFound {
			t.Errorf("public GET /debug/pprof/ = %d, want 404: the profiler is on the admin address only", code)
		}
	})
	t.Run("no admin address", func(t *testing.T) {
		_, admin, _ := start(t, map[string]string{"P_HTTP_ADDR": servicetest.FreeAddr(t)}, slog.New(slog.DiscardHandler))
		if admin != "" {
			t.Errorf("admin address %q without P_ADMIN_ADDR", admin)
		}
	})
}

// TestLimited checks that the program's routes are behind the limiter, with
// the rules of LIMIT_RULES, and health, readiness and metrics are not.
func TestLimited(t *testing.T) {
	base, _, _ := start(t, map[string]string{
		"P_HTTP_ADDR":   servicetest.FreeAddr(t),
		"P_LIMIT_RULES": `{"adaptive": "none", "routes": {"GET /hello": {"rate": 0.001, "burst": 1}}}`,
	}, slog.New(slog.DiscardHandler))
	if code, _ := body(t, base+"/hello"); code != http.StatusOK {
		t.Fatalf("first GET /hello = %d, want 200", code)
	}
	resp, err := get(base + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("second GET /hello = %d, Retry-After %q, Content-Type %q; want 429 problem+json with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	for range 3 {
		for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
			if code, _ := body(t, base+path); code != http.StatusOK {
				t.Errorf("GET %s = %d, want 200: never limited", path, code)
			}
		}
	}
	_, metrics := body(t, base+"/metrics")
	for _, want := range []string{`limiter_rejected_total{priority="normal",reason="route"} 1`, `limiter_rejected_total{priority="low",reason="adaptive"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestLimitRulesInvalid(t *testing.T) {
	env := config.New(func(k string) string { return map[string]string{"P_LIMIT_RULES": `{"adaptive": "magic"}`}[k] }, "P_")
	process.ReadLimit(env)
	if err := env.Err(); err == nil || !strings.Contains(err.Error(), "P_LIMIT_RULES") {
		t.Errorf("env.Err() = %v, want an error naming P_LIMIT_RULES", err)
	}
}

// TestTraced checks, against a real Jaeger, that a request to a process
// continues the caller's trace, that its log line carries the trace id, and
// that Close exports the spans still buffered.
func TestTraced(t *testing.T) {
	jaeger := jaegertest.Start(t)
	// The batch exporter reads its settings from the process environment:
	// a minute's delay leaves the export to Close.
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
	logs := &logtest.Buffer{}
	base, _, stop := start(t, map[string]string{
		"P_HTTP_ADDR":                 servicetest.FreeAddr(t),
		"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.OTLPHTTP,
	}, logging.New(logs, "hello", slog.LevelInfo))

	traceID := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled, Remote: true})
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	propagation.TraceContext{}.Inject(trace.ContextWithSpanContext(t.Context(), parent), propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.Contains(logs.String(), `"trace_id":"`+traceID.String()+`"`) {
		t.Errorf("no log line carries the caller's trace id %s:\n%s", traceID, logs)
	}

	stop() // Close flushes the span
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tr := jaeger.WaitTrace(ctx, t, traceID.String(), func(tr jaegertest.Trace) bool { return len(tr.ByName("GET /hello")) > 0 })
	span := tr.ByName("GET /hello")[0]
	if span.Service != "hello" || span.ParentID != parent.SpanID().String() || span.Kind != "server" {
		t.Errorf("span GET /hello = service %q, parent %q, kind %q; want hello, the caller's %s, server", span.Service, span.ParentID, span.Kind, parent.SpanID())
	}
}
