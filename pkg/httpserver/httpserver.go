// Package httpserver runs a service's HTTP server: a Gin router with the
// endpoints and middleware every microshop service shares, and a lifecycle
// that shuts down gracefully.
//
// Shutdown order, when the context passed to Serve ends (SIGINT/SIGTERM in
// main): readiness turns to 503 so load balancers stop sending traffic, the
// listener closes, in-flight requests drain until Config.ShutdownTimeout, and
// Serve returns. The caller then closes its dependencies in reverse order of
// opening (deferred closes in run do exactly that).
package httpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/problem"
)

// Config configures Serve.
type Config struct {
	// Addr is the TCP listen address, e.g. "127.0.0.1:8081" (":0" picks a port).
	Addr string
	// ShutdownTimeout bounds how long in-flight requests may drain after the
	// context ends; zero means 10s.
	ShutdownTimeout time.Duration
}

// NewRouter returns a Gin engine with the shared behaviour of every service:
// every request gets an id (X-Request-Id) and one access log line, panics
// and unknown routes answer problem+json, bodies are bounded before they
// are read (LimitBody with DefaultMaxBody), and GET /healthz and /readyz
// are served by checks. The outer middleware, if any, runs first, around
// all of that: tracing there puts the trace id in the access log line.
func NewRouter(log *slog.Logger, checks *health.Checks, outer ...gin.HandlerFunc) *gin.Engine {
	// Gin's mode is process-global; release mode only silences its debug
	// printing of routes, so every router setting the same value is harmless.
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.ContextWithFallback = true // c.Request.Context() flows through c as a context.Context
	// In order, outermost first: the id and the log see every answer,
	// including a recovered panic's and a refused body's.
	r.Use(outer...)
	r.Use(
		requestID,
		accessLog(log),
		recoverProblem(log),
		LimitBody(DefaultMaxBody),
	)
	r.NoRoute(func(c *gin.Context) {
		p := problem.New(http.StatusNotFound, "no route for "+c.Request.URL.Path)
		p.Instance = c.Request.URL.Path
		problem.Write(c.Writer, p)
	})
	r.NoMethod(func(c *gin.Context) {
		p := problem.New(http.StatusMethodNotAllowed, c.Request.Method+" is not allowed on "+c.Request.URL.Path)
		p.Instance = c.Request.URL.Path
		problem.Write(c.Writer, p)
	})
	r.GET("/healthz", gin.WrapF(checks.Live))
	r.GET("/readyz", gin.WrapF(checks.Ready))
	return r
}

// recoverProblem turns a panic in a handler into a logged 500 problem, so one
// bad request cannot take the process down.
func recoverProblem(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler { // the client went away; net/http expects this panic
				panic(v)
			}
			log.ErrorContext(c.Request.Context(), "panic in handler", slog.Any("panic", v), slog.String("path", c.Request.URL.Path))
			if !c.Writer.Written() {
				problem.Write(c.Writer, problem.New(http.StatusInternalServerError, ""))
			}
			c.Abort()
		}()
		c.Next()
	}
}

// Serve listens on cfg.Addr and serves h until ctx ends or the server fails.
// On ctx's end it drains (see the package doc) and returns nil if every
// in-flight request finished within cfg.ShutdownTimeout.
func Serve(ctx context.Context, log *slog.Logger, cfg Config, h http.Handler, checks *health.Checks) error {
	ln, err := Listen(cfg)
	if err != nil {
		return err
	}
	return ServeListener(ctx, log, cfg, ln, h, checks)
}

// Listen opens the TCP listener of cfg.Addr, for a caller that needs to
// know the port before serving (a ":0" address, a registration in service
// discovery) and then calls ServeListener.
func Listen(cfg Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return ln, nil
}

// ServeListener is Serve on a listener already open; it closes ln.
// cfg.Addr is not used.
func ServeListener(ctx context.Context, log *slog.Logger, cfg Config, ln net.Listener, h http.Handler, checks *health.Checks) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("http server listening", slog.String("addr", ln.Addr().String()))

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}

	timeout := cfg.ShutdownTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	log.Info("shutting down: draining in-flight requests", slog.String("timeout", timeout.String()))
	checks.Drain()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return errors.Join(fmt.Errorf("drain http requests: %w", err), srv.Close())
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	log.Info("http server stopped")
	return nil
}
