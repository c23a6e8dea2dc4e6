// Package process is what every microshop program that serves HTTP is made
// of, whatever else it does: its telemetry (pkg/telemetry: traces over OTLP,
// one Prometheus registry), an HTTP router with health, metrics and tracing
// (pkg/httpserver), an optional admin listener with the Go profiler, and the
// lifecycle that serves, drains and flushes (pkg/lifecycle), and, when
// the environment names a Consul agent, its place in service discovery and
// its live rules.
//
// The gateway and the payment provider simulator are built on it directly;
// order, inventory and payment through pkg/sagaservice, which adds the
// database, Kafka and the outbox. So every process is observed, drained and
// profiled the same way.
//
// # Consul: the full mode
//
// When CONSUL_HTTP_ADDR (and CONSUL_HTTP_TOKEN, Consul's own variables) is
// set, the process is in Consul's catalog while it serves: Run registers it
// once its listener is open — a unique instance id, the address others dial,
// a version tag and an HTTP check on /readyz (pkg/discovery) — and, when the
// stop signal arrives, deregisters it first and only then drains, so that
// no caller is sent to an instance that is stopping. Consul unreachable at
// start does not stop the process: registration is retried with backoff
// while it serves. An agent that restarts and forgets the instance gets it
// back within reregisterInterval (5 s): the process asks whether it is still
// registered. Breakers read their rules from Consul KV and follow
// them ([Process.Breakers]). Unset, the embedded mode: no Consul at all.
//
// A Process is built by one goroutine (Start, then the routes), Run once,
// and Closed.
package process

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/gin-gonic/gin"
	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/discovery"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/limit"
	"github.com/microshop/microshop/pkg/liverules"
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
	// Limit are the process's limits (pkg/limit): for good in the embedded
	// mode, and with Consul until microshop/<name>/limit says otherwise.
	// The zero value is limit.DefaultRules().
	Limit limit.Rules
	// AdvertiseAddr is the host (name or IP) other processes dial to reach
	// this one, as registered in Consul. Empty, the default: the listen
	// host, or the host name when listening on every interface (0.0.0.0,
	// ::), which is what containers on one Docker network resolve. Set it
	// where the host name is not reachable, for example to a Kubernetes
	// pod's IP.
	AdvertiseAddr string
}

// ReadConfig reads the variables every process has through env, whose
// prefix is the process's (config.New(getenv, "PSP_")): HTTP_ADDR (default
// httpAddr), SHUTDOWN_TIMEOUT (10s), LOG_LEVEL (info), ADMIN_ADDR (none) and
// ADVERTISE_ADDR (none). What does not parse is in env.Err(). Limit is not
// read: a program that limits its requests reads it with ReadLimit.
func ReadConfig(env *config.Reader, httpAddr string) Config {
	return Config{
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", httpAddr),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel:      env.LogLevel("LOG_LEVEL", slog.LevelInfo),
		AdminAddr:     env.Addr("ADMIN_ADDR", ""),
		AdvertiseAddr: env.String("ADVERTISE_ADDR", ""),
	}
}

// ReadLimit reads LIMIT_RULES through env, a pkg/limit rules document
// (limit.Rules), default limit.DefaultRules(). What does not parse or
// validate is in env.Err().
func ReadLimit(env *config.Reader) limit.Rules {
	rules, err := liverules.Parse(env.String("LIMIT_RULES", ""), limit.DefaultRules(), limit.Validate)
	env.Check("LIMIT_RULES", err)
	return rules
}

// LogAttrs returns c for a log line; a program's Config.LogValue adds its
// own after them.
func (c Config) LogAttrs() []slog.Attr {
	return []slog.Attr{
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("admin_addr", c.AdminAddr),
		slog.String("advertise_addr", c.AdvertiseAddr),
		slog.Any("limit", c.Limit),
	}
}

// flushTimeout bounds how long Close waits for the last spans to export.
const flushTimeout = 5 * time.Second

// deregisterTimeout bounds how long a stopping process waits for Consul to
// take it out of the catalog before it drains anyway; its check, failing
// once the listener is closed, takes it out a second later.
const deregisterTimeout = 2 * time.Second

// Process is the observed HTTP server of a program. Create it with Start.
type Process struct {
	// Telemetry is the process's tracer provider and metrics registry; the
	// program instruments its clients and database with it and registers
	// its own metrics on Telemetry.Registry.
	Telemetry *telemetry.Telemetry
	// Checks decide readiness; the program adds its dependencies.
	Checks *health.Checks
	// Router serves HTTP: /healthz, /readyz and /metrics are registered,
	// every route is traced and measured and, but for those three, behind
	// the process's Limiter; the program adds its API.
	Router *gin.Engine
	// Limiter sheds what the process cannot serve (pkg/limit): every route
	// the program registers on Router is behind it.
	Limiter *limit.Limiter
	// Consul is the client of the agent named by CONSUL_HTTP_ADDR; nil in
	// the embedded mode, where that variable is unset. The program builds
	// its resolvers with it (pkg/discovery).
	Consul *api.Client

	name     string
	cfg      Config
	log      *slog.Logger
	tasks    []lifecycle.Task // the Process's own background work: rule watches
	breakers *breaker.Set
}

// An Option adds what a program knows about its own routes to Start.
type Option func(*limit.Config)

// WithLimit gives the Limiter the program's knowledge: who the
// authenticated user of a request is (user, nil: nobody; see
// limit.Config.User), and its routes' rules (their priorities, mostly),
// which a rules document may override route by route.
func WithLimit(user func(*http.Request) string, routes map[string]limit.Route) Option {
	return func(c *limit.Config) { c.User, c.Routes = user, routes }
}

// Start sets up the telemetry of the process name (the OTEL_* variables
// read through getenv, see pkg/telemetry) and builds its router. Nothing
// listens until Run. Close the Process when Run returned, or when the
// program gives up before.
//
// With CONSUL_HTTP_ADDR set (read through getenv, like CONSUL_HTTP_TOKEN)
// the process is registered in Consul while Run serves; see the package
// doc.
//
// Every route the program registers on Router is behind the Limiter, with
// cfg.Limit in force and, with Consul, the document at microshop/<name>/limit
// followed while Run runs (see Breakers for how).
func Start(ctx context.Context, name string, cfg Config, getenv func(string) string, log *slog.Logger, opts ...Option) (*Process, error) {
	var consul *api.Client
	if addr := getenv("CONSUL_HTTP_ADDR"); addr != "" {
		var err error
		consul, err = api.NewClient(&api.Config{Address: addr, Token: getenv("CONSUL_HTTP_TOKEN")})
		if err != nil {
			return nil, fmt.Errorf("consul client of CONSUL_HTTP_ADDR %q: %w", addr, err)
		}
	}
	tel, err := telemetry.Start(ctx, telemetry.Config{ServiceName: name, Getenv: getenv}, log)
	if err != nil {
		return nil, err
	}
	checks := health.New(2 * time.Second)
	router := httpserver.NewRouter(log, checks, tel.ServerMiddleware()...)
	router.GET("/metrics", gin.WrapH(tel.MetricsHandler()))
	p := &Process{Telemetry: tel, Checks: checks, Router: router, Consul: consul, name: name, cfg: cfg, log: log}
	lcfg := limit.Config{Logger: log, Metrics: tel.Registry}
	for _, o := range opts {
		o(&lcfg)
	}
	if p.Limiter, err = limit.New(lcfg, cfg.Limit); err != nil {
		return nil, errors.Join(fmt.Errorf("limiter: %w", err), p.Close())
	}
	// After /healthz, /readyz and /metrics: those are never shed.
	router.Use(p.Limiter.Middleware())
	if err := follow(ctx, p, "limit", cfg.Limit, limit.Validate, p.Limiter.SetRules); err != nil {
		return nil, errors.Join(err, p.Close())
	}
	return p, nil
}

// follow puts the rules document of concern in force with apply: with
// Consul, the one at microshop/<name>/<concern>, read now and followed
// while Run runs, each valid change applied at once, an invalid one
// logged, counted and ignored (pkg/liverules); def until it is read, and
// when the key is missing. Without Consul, nothing to follow.
func follow[T any](ctx context.Context, p *Process, concern string, def T, validate func(T) error, apply func(T) error) error {
	if p.Consul == nil {
		return nil
	}
	key := liverules.Key(p.name, concern)
	watch, err := liverules.NewWatch(p.Consul, key, def, liverules.Options[T]{
		Validate: validate,
		OnChange: func(v T) {
			if err := apply(v); err != nil { // validated already: cannot happen
				p.log.Error("apply rules", slog.String("key", key), slog.Any("error", err))
			}
		},
		Logger:  p.log,
		Metrics: p.Telemetry.Registry,
	})
	if err != nil {
		return fmt.Errorf("%s rules: %w", concern, err)
	}
	if err := watch.Load(ctx); err != nil {
		p.log.Warn("rules not read from consul; the defaults hold until they are", slog.String("key", key), slog.Any("error", err))
	}
	p.tasks = append(p.tasks, lifecycle.Task{Name: concern + " rules watch", Run: watch.Run})
	return nil
}

// Breakers returns the circuit breakers of the process's upstreams
// (pkg/breaker), their metrics on Telemetry.Registry. In the embedded mode
// their rules are rules, for good. With Consul, rules are the defaults: the
// rules in force are the JSON document at microshop/<name>/breaker in
// Consul KV (liverules.Key), read now and followed while Run runs, each
// valid change applied at once, an invalid one logged, counted and ignored
// (pkg/liverules). Call it at most once, before Run; Close closes the set.
func (p *Process) Breakers(ctx context.Context, rules map[string]breaker.Rules) (*breaker.Set, error) {
	if p.breakers != nil {
		return nil, errors.New("breakers: the process has its breakers already")
	}
	set, err := breaker.NewSet(breaker.Config{Logger: p.log, Metrics: p.Telemetry.Registry}, rules)
	if err != nil {
		return nil, err
	}
	p.breakers = set
	if err := follow(ctx, p, "breaker", rules, breaker.Validate, set.SetRules); err != nil {
		return nil, err
	}
	return set, nil
}

// Run serves HTTP until ctx ends, with tasks running in the background, as
// lifecycle.Run does: tasks start in order before serving and stop in
// reverse once HTTP has drained. The admin server, if configured, is the
// first task, so that it outlives the others and a stuck shutdown can still
// be profiled. Run returns once every goroutine it started has ended.
//
// With Consul, the process is registered once it listens and deregistered
// as soon as ctx ends, before HTTP drains (see the package doc). Tasks
// the Process added itself (Breakers' rule watch) run before tasks.
func (p *Process) Run(ctx context.Context, tasks ...lifecycle.Task) error {
	tasks = append(slices.Clone(p.tasks), tasks...)
	if p.cfg.AdminAddr != "" {
		admin := lifecycle.Task{Name: "admin server", Run: func(ctx context.Context) error {
			cfg := httpserver.Config{Addr: p.cfg.AdminAddr, ShutdownTimeout: time.Second}
			return httpserver.Serve(ctx, p.log.With(slog.String("server", "admin")), cfg, AdminHandler(), health.New(0))
		}}
		tasks = append([]lifecycle.Task{admin}, tasks...)
	}
	return lifecycle.Run(ctx, p.log, p.serve, tasks...)
}

// serve serves HTTP until ctx ends and drains. With Consul, the instance is
// in the catalog meanwhile: registered once the listener is open (retried
// until Consul answers), deregistered when ctx ends, and only then does the
// server drain.
func (p *Process) serve(ctx context.Context) error {
	if p.Consul == nil {
		return httpserver.Serve(ctx, p.log, p.cfg.HTTP, p.Router, p.Checks)
	}
	ln, err := httpserver.Listen(p.cfg.HTTP)
	if err != nil {
		return err
	}
	reg, err := p.registrar(ln.Addr().(*net.TCPAddr))
	if err != nil {
		return errors.Join(err, ln.Close())
	}
	// The server's own context ends once the instance has left the
	// catalog; registered ends with ctx, or when the server failed.
	serveCtx, drain := context.WithCancel(context.WithoutCancel(ctx))
	defer drain()
	registered, leave := context.WithCancel(ctx)
	left := make(chan struct{})
	go func() {
		defer close(left)
		defer drain()
		p.register(registered, reg)
		p.keepRegistered(registered, reg)
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deregisterTimeout)
		defer cancel()
		if err := reg.Deregister(dctx); err != nil {
			p.log.Warn("not deregistered from consul; its check will fail once drained", slog.String("instance", reg.ID()), slog.Any("error", err))
			return
		}
		p.log.Info("deregistered from consul", slog.String("instance", reg.ID()))
	}()
	err = httpserver.ServeListener(serveCtx, p.log, p.cfg.HTTP, ln, p.Router, p.Checks)
	leave()
	<-left
	return err
}

// registrar describes the instance listening on addr to Consul, under
// Config.AdvertiseAddr if set. Otherwise an unspecified listen address
// (0.0.0.0, ::) is registered under the host name, which is what other
// hosts and containers resolve.
func (p *Process) registrar(addr *net.TCPAddr) (*discovery.Registrar, error) {
	host := addr.IP.String()
	switch {
	case p.cfg.AdvertiseAddr != "":
		host = p.cfg.AdvertiseAddr
	case addr.IP.IsUnspecified():
		var err error
		if host, err = os.Hostname(); err != nil {
			return nil, fmt.Errorf("register in consul: host name: %w", err)
		}
	}
	return discovery.NewRegistrar(p.Consul, discovery.Registration{
		Service: p.name, Address: host, Port: addr.Port, Version: telemetry.Version(),
	})
}

// register registers reg, retrying with backoff until Consul accepts it or
// ctx ends.
func (p *Process) register(ctx context.Context, reg *discovery.Registrar) {
	pause := &backoff.ExponentialBackOff{
		InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.5, Multiplier: 2, MaxInterval: 5 * time.Second,
	}
	pause.Reset()
	for {
		err := reg.Register(ctx)
		if err == nil {
			p.log.Info("registered in consul", slog.String("instance", reg.ID()))
			return
		}
		if ctx.Err() != nil {
			return
		}
		wait := pause.NextBackOff()
		p.log.Warn("not registered in consul; retrying", slog.Any("error", err), slog.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// reregisterInterval is how often a registered process asks its agent
// whether it still has the instance. A Consul agent that restarted without
// its state has forgotten it; until it is registered again no caller
// resolves it, so this bounds how long an agent's restart hides a healthy
// instance (plus its first passing check).
const reregisterInterval = 5 * time.Second

// keepRegistered asks the agent every reregisterInterval until ctx ends
// whether it still has reg, and registers it again when it has not. An
// agent that does not answer is asked again next time: the resolvers keep
// their last instances meanwhile (pkg/discovery).
func (p *Process) keepRegistered(ctx context.Context, reg *discovery.Registrar) {
	tick := time.NewTicker(reregisterInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		ok, err := reg.Registered(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			p.log.Debug("consul unreachable; asking again", slog.Any("error", err))
		case !ok:
			p.log.Warn("consul forgot the instance (agent restarted?); registering it again", slog.String("instance", reg.ID()))
			p.register(ctx, reg)
		}
	}
}

// Close exports the spans still buffered, waiting at most a few seconds.
// Call it once, after Run returned.
func (p *Process) Close() error {
	if p.breakers != nil {
		p.breakers.Close()
	}
	if p.Limiter != nil {
		p.Limiter.Close()
	}
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
