// Package process is what every microshop program that serves HTTP is made
// of, whatever else it does: its telemetry (pkg/telemetry: traces over OTLP,
// one Prometheus registry), an HTTP router with health, metrics and tracing
// (pkg/httpserver), an optional admin listener with the Go profiler, and the
// lifecycle that serves, drains and flushes (pkg/lifecycle).
//
// The gateway and the payment provider simulator are built on it directly;
// order, inventory and payment through pkg/sagaservice, which adds the
// database, Kafka and the outbox. So every process is observed, drained and
// profiled the same way.
//
// A Process is built by one goroutine (Start, then the routes), Run once,
// and Closed.
package process

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/telemetry"
)

// Config is what every process has to configure.
type Config struct {
	HTTP     httpserver.Config
	LogLevel slog.Level
	// AdminAddr is the listen address of the admin server, which serves the
	// Go profiler at /debug/pprof/. Empty, the default, serves none: the
	// profiler shows the process's internals and costs CPU while it runs,
	// so it is opt-in and belongs on a loopback or otherwise private
	// address.
	AdminAddr string
}

// ReadConfig reads the variables every process has through env, whose
// prefix is the process's (config.New(getenv, "PSP_")): HTTP_ADDR (default
// httpAddr), SHUTDOWN_TIMEOUT (10s), LOG_LEVEL (info) and ADMIN_ADDR (none).
// What does not parse is in env.Err().
func ReadConfig(env *config.Reader, httpAddr string) Config {
	return Config{
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", httpAddr),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel:  env.LogLevel("LOG_LEVEL", slog.LevelInfo),
		AdminAddr: env.Addr("ADMIN_ADDR", ""),
	}
}

// LogAttrs returns c for a log line; a program's Config.LogValue adds its
// own after them.
func (c Config) LogAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("admin_addr", c.AdminAddr),
	}
}

// flushTimeout bounds how long Close waits for the last spans to export.
const flushTimeout = 5 * time.Second

// Process is the observed HTTP server of a program. Create it with Start.
type Process struct {
	// Telemetry is the process's tracer provider and metrics registry; the
	// program instruments its clients and database with it and registers
	// its own metrics on Telemetry.Registry.
	Telemetry *telemetry.Telemetry
	// Checks decide readiness; the program adds its dependencies.
	Checks *health.Checks
	// Router serves HTTP: /healthz, /readyz and /metrics are registered,
	// every route is traced and measured; the program adds its API.
	Router *gin.Engine

	cfg Config
	log *slog.Logger
}

// Start sets up the telemetry of the process name (the OTEL_* variables
// read through getenv, see pkg/telemetry) and builds its router. Nothing
// listens until Run. Close the Process when Run returned, or when the
// program gives up before.
func Start(ctx context.Context, name string, cfg Config, getenv func(string) string, log *slog.Logger) (*Process, error) {
	tel, err := telemetry.Start(ctx, telemetry.Config{ServiceName: name, Getenv: getenv}, log)
	if err != nil {
		return nil, err
	}
	checks := health.New(2 * time.Second)
	router := httpserver.NewRouter(log, checks, tel.ServerMiddleware()...)
	router.GET("/metrics", gin.WrapH(tel.MetricsHandler()))
	return &Process{Telemetry: tel, Checks: checks, Router: router, cfg: cfg, log: log}, nil
}

// Run serves HTTP until ctx ends, with tasks running in the background, as
// lifecycle.Run does: tasks start in order before serving and stop in
// reverse once HTTP has drained. The admin server, if configured, is the
// first task, so that it outlives the others and a stuck shutdown can still
// be profiled. Run returns once every goroutine it started has ended.
func (p *Process) Run(ctx context.Context, tasks ...lifecycle.Task) error {
	if p.cfg.AdminAddr != "" {
		admin := lifecycle.Task{Name: "admin server", Run: func(ctx context.Context) error {
			cfg := httpserver.Config{Addr: p.cfg.AdminAddr, ShutdownTimeout: time.Second}
			return httpserver.Serve(ctx, p.log.With(slog.String("server", "admin")), cfg, AdminHandler(), health.New(0))
		}}
		tasks = append([]lifecycle.Task{admin}, tasks...)
	}
	serve := func(ctx context.Context) error { return httpserver.Serve(ctx, p.log, p.cfg.HTTP, p.Router, p.Checks) }
	return lifecycle.Run(ctx, p.log, serve, tasks...)
}

// Close exports the spans still buffered, waiting at most a few seconds.
// Call it once, after Run returned.
func (p *Process) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := p.Telemetry.Shutdown(ctx); err != nil {
		return fmt.Errorf("close process: %w", err)
	}
	return nil
}

// AdminHandler serves the Go profiler under /debug/pprof/, as
// net/http/pprof registers it on the default mux, but on a mux of its own
// so that importing the profiler exposes nothing on the public router.
func AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
