package telemetry_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/pkg/telemetry"
	"github.com/microshop/microshop/pkg/telemetry/jaegertest"
)

// env returns a Getenv reading vars.
func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func start(t *testing.T, vars map[string]string) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.Start(t.Context(), telemetry.Config{ServiceName: "order", Getenv: env(vars)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel
}

// TestExportToJaeger sends a span to a real Jaeger over each OTLP protocol
// and reads it back through the query API.
func TestExportToJaeger(t *testing.T) {
	j := jaegertest.Start(t)
	tests := []struct {
		name string
		vars map[string]string
	}{
		{"http/protobuf base endpoint", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": j.OTLPHTTP}},
		{"http/protobuf traces endpoint", map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": j.OTLPHTTP + "/v1/traces"}},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": j.OTLPGRPC, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}},
		{"service name from OTEL_SERVICE_NAME", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": j.OTLPHTTP, "OTEL_SERVICE_NAME": "order-canary"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel := start(t, tt.vars)
			if !tel.Exporting {
				t.Fatal("Exporting = false with an endpoint configured")
			}
			_, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "place order")
			traceID := span.SpanContext().TraceID().String()
			span.End()
			if err := tel.Shutdown(t.Context()); err != nil { // flushes
				t.Fatalf("Shutdown: %v", err)
			}
			want := "order"
			if name := tt.vars["OTEL_SERVICE_NAME"]; name != "" {
				want = name
			}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			tr := j.WaitTrace(ctx, t, traceID, func(tr jaegertest.Trace) bool { return len(tr) == 1 })
			if got := tr[0].Service + " " + tr[0].Name; got != want+" place order" {
				t.Errorf("span = %q, want %q", got, want+" place order")
			}
		})
	}
}

// TestInvalidUTF8 sends, in one batch, a span whose attribute holds what a
// client sent that is not UTF-8 (a path with %FF) and a span of another
// trace: both reach Jaeger, the bad bytes replaced, instead of the whole
// batch failing to encode.
func TestInvalidUTF8(t *testing.T) {
	j := jaegertest.Start(t)
	tel := start(t, map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": j.OTLPHTTP})
	tracer := tel.TracerProvider.Tracer("test")
	_, bad := tracer.Start(t.Context(), "GET \xff", trace.WithAttributes(attribute.String("url.path", "/api/v1/orders/\xff")))
	bad.End()
	_, good := tracer.Start(t.Context(), "place order")
	good.End()
	if err := tel.Shutdown(t.Context()); err != nil { // one batch
		t.Fatalf("Shutdown: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	j.WaitTrace(ctx, t, good.SpanContext().TraceID().String(), func(tr jaegertest.Trace) bool { return len(tr) == 1 })
	tr := j.WaitTrace(ctx, t, bad.SpanContext().TraceID().String(), func(tr jaegertest.Trace) bool { return len(tr) == 1 })
	if got, want := tr[0].Name, "GET \uFFFD"; got != want {
		t.Errorf("span name = %q, want %q", got, want)
	}
	if got, want := tr[0].Tags["url.path"], "/api/v1/orders/\uFFFD"; got != want {
		t.Errorf("url.path = %q, want %q", got, want)
	}
}

// TestNoEndpoint: nothing is exported, yet a request through Transport to a
// server with ServerMiddleware continues the caller's trace.
func TestNoEndpoint(t *testing.T) {
	tel := start(t, nil)
	if tel.Exporting {
		t.Fatal("Exporting = true without an endpoint")
	}
	var server trace.SpanContext
	router := gin.New()
	router.Use(tel.ServerMiddleware()...)
	router.GET("/orders/:id", func(c *gin.Context) {
		server = trace.SpanContextFromContext(c.Request.Context())
		c.Status(http.StatusNoContent)
	})
	srv := httptest.NewServer(router)
	defer srv.Close()

	ctx, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "caller")
	defer span.End()
	client := &http.Client{Transport: tel.Transport("order", nil)}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/orders/42", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := server.TraceID(), span.SpanContext().TraceID(); got != want {
		t.Errorf("server span's trace id = %s, want the caller's %s", got, want)
	}
	if server.SpanID() == span.SpanContext().SpanID() || !server.IsValid() {
		t.Errorf("server span %s is not a span of its own", server.SpanID())
	}
}

// TestREDMetrics checks the labels of the server and client histograms, and
// the exemplars, with promtool check metrics run on what /metrics serves.
func TestREDMetrics(t *testing.T) {
	tel := start(t, nil)
	router := gin.New()
	router.Use(tel.ServerMiddleware()...)
	router.GET("/orders/:id", func(c *gin.Context) { c.Status(http.StatusOK) })
	router.POST("/orders", func(c *gin.Context) { c.Status(http.StatusUnprocessableEntity) })
	router.GET("/metrics", gin.WrapH(tel.MetricsHandler()))
	srv := httptest.NewServer(router)
	defer srv.Close()

	ctx, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "caller")
	client := &http.Client{Transport: tel.Transport("order", nil)}
	for _, r := range []struct{ method, path string }{
		{"GET", "/orders/1"}, {"GET", "/orders/2"}, {"POST", "/orders"}, {"GET", "/no/such/route"}, {"BREW", "/orders/3"},
	} {
		req, _ := http.NewRequestWithContext(ctx, r.method, srv.URL+r.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	span.End()
	unreachable := httptest.NewServer(http.NotFoundHandler())
	unreachable.Close()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, unreachable.URL, nil)
	if _, err := client.Do(req); err == nil {
		t.Fatal("request to a closed server succeeded")
	}

	families, err := tel.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	exemplars := map[string]string{}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "http_") {
			continue
		}
		for _, m := range f.GetMetric() {
			key := f.GetName() + labels(m)
			got[key] = m.GetHistogram().GetSampleCount()
			for _, b := range m.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil {
					exemplars[key] = e.GetLabel()[0].GetValue()
				}
			}
		}
	}
	want := map[string]uint64{
		`http_server_request_duration_seconds{http_request_method="GET",http_response_status_class="2xx",http_route="/orders/:id"}`:  2,
		`http_server_request_duration_seconds{http_request_method="POST",http_response_status_class="4xx",http_route="/orders"}`:     1,
		`http_server_request_duration_seconds{http_request_method="GET",http_response_status_class="4xx",http_route="unmatched"}`:    1,
		`http_server_request_duration_seconds{http_request_method="_OTHER",http_response_status_class="4xx",http_route="unmatched"}`: 1,
		`http_client_request_duration_seconds{http_request_method="GET",http_response_status_class="2xx",peer_service="order"}`:      2,
		`http_client_request_duration_seconds{http_request_method="GET",http_response_status_class="4xx",peer_service="order"}`:      1,
		`http_client_request_duration_seconds{http_request_method="POST",http_response_status_class="4xx",peer_service="order"}`:     1,
		`http_client_request_duration_seconds{http_request_method="_OTHER",http_response_status_class="4xx",peer_service="order"}`:   1,
		`http_client_request_duration_seconds{http_request_method="GET",http_response_status_class="error",peer_service="order"}`:    1,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("histogram counts (-want +got):\n%s", diff)
	}
	traceID := span.SpanContext().TraceID().String()
	for _, key := range []string{
		`http_client_request_duration_seconds{http_request_method="POST",http_response_status_class="4xx",peer_service="order"}`,
		`http_server_request_duration_seconds{http_request_method="POST",http_response_status_class="4xx",http_route="/orders"}`,
	} {
		if exemplars[key] != traceID {
			t.Errorf("exemplar of %s = %q, want the trace id %s", key, exemplars[key], traceID)
		}
	}
	if ex := exemplars[`http_client_request_duration_seconds{http_request_method="GET",http_response_status_class="error",peer_service="order"}`]; ex != "" {
		t.Errorf("a request outside any span has exemplar %q", ex)
	}

	promtool(t, srv.URL+"/metrics")
}

// promtool runs promtool check metrics on what url serves, when promtool
// is installed (make test installs it; see observability/README.md).
func promtool(t *testing.T, url string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	servicetest.Require(t, "promtool (make prometheus)", err)
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func labels(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestStartRejects(t *testing.T) {
	tests := []struct {
		name string
		vars map[string]string
	}{
		{"unknown sampler", map[string]string{"OTEL_TRACES_SAMPLER": "sometimes"}},
		{"ratio above 1", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}},
		{"unknown protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}},
		{"resource attribute without value", map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := telemetry.Start(t.Context(), telemetry.Config{ServiceName: "order", Getenv: env(tt.vars)}, slog.New(slog.DiscardHandler))
			if err == nil {
				t.Errorf("Start with %v succeeded, want an error", tt.vars)
			}
		})
	}
}

func TestSampler(t *testing.T) {
	tests := []struct {
		name        string
		vars        map[string]string
		wantSampled bool
	}{
		{"default samples roots", nil, true},
		{"always_off", map[string]string{"OTEL_TRACES_SAMPLER": "always_off"}, false},
		{"ratio 0", map[string]string{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, false},
		{"ratio 1", map[string]string{"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, true},
		{"disabled export still samples", map[string]string{"OTEL_SDK_DISABLED": "true"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tel := start(t, tt.vars)
			_, span := tel.TracerProvider.Tracer("test").Start(t.Context(), "root")
			span.End()
			if got := span.SpanContext().IsSampled(); got != tt.wantSampled {
				t.Errorf("root span sampled = %t, want %t", got, tt.wantSampled)
			}
		})
	}
}
