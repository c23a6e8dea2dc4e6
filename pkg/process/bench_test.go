package process_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/process"
)

// BenchmarkHop measures the CPU one request costs in a process's HTTP
// chain, side by side: a bare net/http handler, the shared router without
// telemetry (request id, access log, recovery, body limit), and the whole
// chain with RED metrics and tracing — tracing off, sampled but not
// exported (make run), exported over OTLP at 100 % and at 10 % sampling. The handler only writes "ok", so the figures
// are the chain's own cost; the OTLP collector is a local server that reads
// and discards, so the export's encoding and sending are counted (in the
// batch processor's goroutine, which shows in ns/op on a loaded machine).
//
//	go test ./pkg/process -run '^$' -bench BenchmarkHop -benchtime 200000x -count 5
//
// DESIGN's target for the whole middleware chain is 1.3× the CPU of a bare
// hop; docs/benchmarks.md keeps the figures.
func BenchmarkHop(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(collector.Close)
	ok := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }
	log := slog.New(slog.DiscardHandler)

	chain := func(b *testing.B, vars map[string]string) http.Handler {
		p, err := process.Start(b.Context(), "bench", process.Config{}, func(k string) string { return vars[k] }, log)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = p.Close() })
		p.Router.GET("/products/:sku", gin.WrapF(ok))
		return p.Router
	}
	cases := []struct {
		name    string
		handler func(b *testing.B) http.Handler
	}{
		{"bare net/http", func(*testing.B) http.Handler { return http.HandlerFunc(ok) }},
		{"router without telemetry", func(*testing.B) http.Handler {
			r := httpserver.NewRouter(log, health.New(0))
			r.GET("/products/:sku", gin.WrapF(ok))
			return r
		}},
		{"metrics, tracing off", func(b *testing.B) http.Handler {
			return chain(b, map[string]string{"OTEL_TRACES_SAMPLER": "always_off"})
		}},
		{"telemetry, not exported", func(b *testing.B) http.Handler { return chain(b, nil) }},
		{"telemetry, exported, 100%", func(b *testing.B) http.Handler {
			return chain(b, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL})
		}},
		{"telemetry, exported, 10%", func(b *testing.B) http.Handler {
			return chain(b, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": collector.URL,
				"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"})
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			h := c.handler(b)
			req := httptest.NewRequest(http.MethodGet, "/products/MUG-CLASSIC", nil)
			b.ReportAllocs()
			for b.Loop() {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
