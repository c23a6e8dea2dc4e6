// Package telemetry is what every microshop process needs to be observed:
// OpenTelemetry tracing exported over OTLP, and one Prometheus registry with
// RED metrics for HTTP servers and clients.
//
// [Start] configures tracing from the standard OpenTelemetry variables, as
// any OpenTelemetry SDK does, so that a user who knows OTel needs to learn
// nothing new:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT         base URL of the collector (Jaeger): http://127.0.0.1:4318
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full URL for traces, overrides the one above
//	OTEL_EXPORTER_OTLP_PROTOCOL         http/protobuf (default) or grpc; _TRACES_PROTOCOL overrides
//	OTEL_TRACES_SAMPLER, _ARG           parentbased_always_on (default), parentbased_traceidratio 0.1, ...
//	OTEL_SERVICE_NAME                   overrides the process name as service.name
//	OTEL_RESOURCE_ATTRIBUTES            key=value,... added to the resource
//	OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none   export nothing
//
// The exporter itself still reads OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _COMPRESSION and the TLS certificate variables from the process
// environment.
//
// With no endpoint (the embedded `make run`) nothing is exported, but spans
// are still created and the W3C trace context still propagates: over HTTP,
// through the outbox and Kafka, into the log lines (pkg/logging adds
// trace_id and span_id). A trace id in a log line then ties together what
// five processes logged about one checkout.
//
// OpenTelemetry's instrumentation libraries (otelgin, otelhttp) read the
// tracer provider and propagator from OTel's global state unless given one.
// Start sets both globals, once per process, and so is the one place in
// microshop that writes OTel's global state; the helpers of [Telemetry]
// pass its providers explicitly all the same.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Config says which process is observed.
type Config struct {
	// ServiceName is service.name, the process name (gateway, order, ...);
	// OTEL_SERVICE_NAME overrides it. Required.
	ServiceName string
	// ServiceVersion is service.version. Empty means the main module's
	// version from the build information ("(devel)" in a local build).
	ServiceVersion string
	// InstanceID is service.instance.id. Empty means a random UUID, new at
	// every start, as the semantic conventions recommend.
	InstanceID string
	// Getenv reads the OTEL_* variables (see the package doc); services pass
	// the getenv of their run function. Nil means os.Getenv.
	Getenv func(string) string
}

// Telemetry is a process's tracer provider and metrics registry. Create it
// with [Start]; call [Telemetry.Shutdown] once, when the process stops. Its
// methods are safe for concurrent use.
type Telemetry struct {
	// TracerProvider creates the process's spans; it exports them if an
	// endpoint is configured.
	TracerProvider trace.TracerProvider
	// Propagator reads and writes the W3C trace context and baggage headers.
	Propagator propagation.TextMapPropagator
	// Registry is the process's one Prometheus registry, served by
	// [Telemetry.MetricsHandler]. It holds the Go runtime and process
	// collectors and the HTTP RED histograms; services register their own
	// collectors on it.
	Registry *prometheus.Registry
	// Exporting tells whether spans are exported (an endpoint is configured
	// and export is not disabled).
	Exporting bool

	sdk         *sdktrace.TracerProvider
	serviceName string
	server      *serverMetrics
	client      *clientMetrics
}

// Start sets up tracing and metrics for the process described by cfg, logging
// to log what it exports where, and installs the tracer provider and the
// propagator as OTel's globals. Nothing is dialled: the exporter connects on
// its first batch.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("start telemetry: no service name")
	}
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	env := cfg.Getenv
	res, err := newResource(cfg)
	if err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	sampler, err := samplerFromEnv(env)
	if err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(sampler)}
	exporter, where, err := newExporter(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	if exporter != nil {
		opts = append(opts, sdktrace.WithBatcher(utf8Exporter{exporter}))
		log.Info("exporting traces", slog.String("endpoint", where), slog.String("sampler", sampler.Description()))
	} else {
		log.Info("not exporting traces: no OTLP endpoint configured; trace context still propagates")
	}
	sdk := sdktrace.NewTracerProvider(opts...)
	t := &Telemetry{
		TracerProvider: sdk,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registry:       prometheus.NewRegistry(),
		Exporting:      exporter != nil,
		sdk:            sdk,
		serviceName:    serviceName(cfg),
	}
	if t.server, err = newServerMetrics(t.Registry); err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	if t.client, err = newClientMetrics(t.Registry); err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	if err := t.Registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	if err := t.Registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("start telemetry: %w", err)
	}
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetTextMapPropagator(t.Propagator)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("opentelemetry", slog.Any("error", err))
	}))
	return t, nil
}

// Shutdown exports the spans still buffered and stops the exporter. Call it
// once, after the process stopped serving and its background tasks returned
// (after lifecycle.Run), with a context bounding the flush.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if err := t.sdk.Shutdown(ctx); err != nil {
		return fmt.Errorf("shut down telemetry: %w", err)
	}
	return nil
}

// ServerMiddleware returns the Gin middleware of an instrumented server, in
// order: a span per request continuing the caller's trace (otelgin), then the
// RED histogram http_server_request_duration_seconds. Use it before the
// routes: router.Use(tel.ServerMiddleware()...).
func (t *Telemetry) ServerMiddleware() []gin.HandlerFunc {
	return []gin.HandlerFunc{
		otelgin.Middleware(t.serviceName,
			otelgin.WithTracerProvider(t.TracerProvider),
			otelgin.WithPropagators(t.Propagator),
			otelgin.WithGinFilter(func(c *gin.Context) bool { return !unobserved(c.FullPath()) }),
		),
		t.server.middleware(),
	}
}

// unobserved reports whether route is one of the endpoints that probes and
// scrapers call every few seconds: tracing them fills Jaeger with noise.
func unobserved(route string) bool {
	switch route {
	case "/healthz", "/readyz", "/metrics":
		return true
	}
	return false
}

// Transport wraps next (nil: http.DefaultTransport) for an HTTP client that
// calls peer, a service name such as "order" or "psp": each request gets a
// client span and carries the trace context, and its duration is observed in
// http_client_request_duration_seconds{peer_service=peer}.
func (t *Telemetry) Transport(peer string, next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	traced := otelhttp.NewTransport(next,
		otelhttp.WithTracerProvider(t.TracerProvider),
		otelhttp.WithPropagators(t.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + peer }),
		otelhttp.WithSpanOptions(trace.WithAttributes(attribute.String("peer.service", peer))),
	)
	// The metrics wrap the traced transport so that the exemplar is the
	// caller's span, which is in ctx, the client span being created inside.
	return t.client.transport(peer, traced)
}

// InstrumentDB adds a span to every query of db (see dbTracing), with the
// statement but without its values, which may be personal data, and with
// the PostgreSQL server's address and port.
func (t *Telemetry) InstrumentDB(db *gorm.DB) error {
	p := dbTracing{tracer: t.TracerProvider.Tracer("github.com/microshop/microshop/pkg/telemetry")}
	// The address is the same for every statement: parsed once, here.
	if pg, ok := db.Dialector.(*postgres.Dialector); ok && pg.Config.DSN != "" {
		cfg, err := pgconn.ParseConfig(pg.Config.DSN)
		if err != nil {
			return fmt.Errorf("instrument database: %w", err)
		}
		p.attrs = append(p.attrs, semconv.ServerAddress(cfg.Host), semconv.ServerPort(int(cfg.Port)))
	}
	if err := db.Use(p); err != nil {
		return fmt.Errorf("instrument database: %w", err)
	}
	return nil
}

// MetricsHandler serves the registry in the Prometheus text format, or in
// OpenMetrics, with the exemplars, to a scraper that asks for it.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{
		Registry:          t.Registry, // counts its own errors
		EnableOpenMetrics: true,
	})
}

// serviceName is the service.name the resource gets.
func serviceName(cfg Config) string {
	if name := cfg.Getenv("OTEL_SERVICE_NAME"); name != "" {
		return name
	}
	return cfg.ServiceName
}

// stampedVersion is the version a release build stamps into the binary:
// go build -ldflags "-X github.com/microshop/microshop/pkg/telemetry.stampedVersion=v1.2.3"
// (the Dockerfile's VERSION argument does). Empty in other builds.
var stampedVersion string

// Version is the program's version: the stamped one if the build set it,
// else the main module's version as Go recorded it, "(devel)" for a build
// from a work tree.
func Version() string {
	if stampedVersion != "" {
		return stampedVersion
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return info.Main.Version
	}
	return "(devel)"
}

// newResource describes the process: service name, version and instance
// id, then OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME, each overriding
// what comes before, as the specification orders them.
func newResource(cfg Config) (*resource.Resource, error) {
	version := cfg.ServiceVersion
	if version == "" {
		version = Version()
	}
	instance := cfg.InstanceID
	if instance == "" {
		instance = uuid.NewString()
	}
	attrs := []attribute.KeyValue{
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(version),
		semconv.ServiceInstanceID(instance),
	}
	fromEnv, err := parseResourceAttributes(cfg.Getenv("OTEL_RESOURCE_ATTRIBUTES"))
	if err != nil {
		return nil, err
	}
	attrs = append(attrs, fromEnv...)
	attrs = append(attrs, semconv.ServiceName(serviceName(cfg)))
	// NewSchemaless: later attributes of the same key win.
	return resource.Merge(resource.Default(), resource.NewSchemaless(attrs...))
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: key=value pairs
// separated by commas, values percent-encoded.
func parseResourceAttributes(s string) ([]attribute.KeyValue, error) {
	var attrs []attribute.KeyValue
	for pair := range strings.SplitSeq(s, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		key, value, ok := strings.Cut(pair, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", pair)
		}
		value, err := percentDecode(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: value of %s: %w", key, err)
		}
		attrs = append(attrs, attribute.String(key, value))
	}
	return attrs, nil
}

// percentDecode decodes %XX escapes, leaving '+' alone (it is not a space
// in this format).
func percentDecode(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape in %q", s)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q", s)
		}
		b.WriteByte(byte(n))
		i += 2
	}
	return b.String(), nil
}

// samplerFromEnv returns the sampler OTEL_TRACES_SAMPLER and
// OTEL_TRACES_SAMPLER_ARG name; parentbased_always_on by default, so that
// a sampled caller's trace is continued whatever the ratio.
func samplerFromEnv(env func(string) string) (sdktrace.Sampler, error) {
	name := strings.ToLower(strings.TrimSpace(env("OTEL_TRACES_SAMPLER")))
	arg := strings.TrimSpace(env("OTEL_TRACES_SAMPLER_ARG"))
	ratio := func() (float64, error) {
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		return r, nil
	}
	switch name {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio", "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		if name == "traceidratio" {
			return sdktrace.TraceIDRatioBased(r), nil
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q: not a sampler this SDK knows", name)
}

// newExporter returns the OTLP span exporter the variables configure and
// the URL it sends to, or nil when nothing is to be exported.
func newExporter(ctx context.Context, env func(string) string) (sdktrace.SpanExporter, string, error) {
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return nil, "", nil
	}
	switch e := strings.ToLower(env("OTEL_TRACES_EXPORTER")); e {
	case "", "otlp":
	case "none":
		return nil, "", nil
	default:
		return nil, "", fmt.Errorf("OTEL_TRACES_EXPORTER %q: only otlp and none are supported", e)
	}
	protocol := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	endpoint := env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
	signalSpecific := endpoint != ""
	if !signalSpecific {
		endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	if endpoint == "" {
		return nil, "", nil
	}
	switch protocol {
	case "", "http/protobuf":
		if !signalSpecific {
			// The base endpoint gets the signal's path; the traces
			// endpoint is used as it is.
			endpoint = strings.TrimSuffix(endpoint, "/") + "/v1/traces"
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		return exp, endpoint, err
	case "grpc":
		exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
		return exp, endpoint, err
	}
	return nil, "", fmt.Errorf("OTLP protocol %q: want http/protobuf or grpc", protocol)
}
