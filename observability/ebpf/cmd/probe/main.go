// Command probe watches the HTTP servers and TCP connections of running Go
// programs with eBPF — no SDK, no change to them — and serves what it counts
// as Prometheus metrics (see package probe). It finds its targets by
// executable name or PID in /proc, adds processes as they start and drops
// them as they exit.
//
// It must run as root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN) on a
// kernel with BTF; otherwise it exits with status 2 and says what is
// missing, and the programs it would have watched run on unaffected.
//
// Run as "probe -check" it only checks: it exits 0 if it could load here,
// or 2 with the same message. The launcher asks this before it adds the
// probe to the native stack.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/microshop/microshop/observability/ebpf/probe"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/logging"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "healthcheck" { // the container's healthcheck: no curl in the image
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := healthcheck(ctx, os.Getenv)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "probe healthcheck:", err)
			os.Exit(1)
		}
		return
	}
	check := flag.Bool("check", false, "only check that the probe can load here: exit 0 if so, 2 saying what is missing")
	flag.Parse()
	var err error
	if *check {
		err = (probe.System{}).Check()
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err = run(ctx, os.Getenv, os.Stdout)
		stop()
	}
	switch {
	case errors.Is(err, probe.ErrMissingCapability), errors.Is(err, probe.ErrNoBTF), errors.Is(err, probe.ErrLockedDown):
		fmt.Fprintln(os.Stderr, "probe: cannot load:", err)
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}

// run loads the probe, serves its metrics and keeps its targets in step
// with /proc until ctx ends.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "probe", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	p, err := probe.Load(probe.Settings{Log: log, Registerer: reg, Routes: cfg.Routes, ProgramStats: cfg.ProgramStats})
	if err != nil {
		return err
	}
	defer p.Close()

	ln, err := net.Listen("tcp", cfg.MetricsAddr)
	if err != nil {
		return err
	}
	var scanned atomic.Bool // ready once the first scan is applied
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !scanned.Load() {
			http.Error(w, "first scan of /proc pending", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving metrics", slog.String("addr", ln.Addr().String()))

	runErr := make(chan error, 1)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go func() { runErr <- p.Run(runCtx) }()

	scan := func() {
		found, err := probe.FindProcesses(cfg.Processes, cfg.PIDs)
		if err != nil {
			log.Error("find targets", slog.Any("err", err))
			return
		}
		p.Sync(found)
		scanned.Store(true)
	}
	scan()
	tick := time.NewTicker(cfg.ScanInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			scan()
		case err := <-serveErr:
			return fmt.Errorf("serve metrics: %w", err)
		case err := <-runErr:
			if err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			return shutdown(srv) // Run returns nil once ctx ended
		case <-ctx.Done():
			return shutdown(srv)
		}
	}
}

// shutdown stops serving metrics, waiting for a scrape in progress.
func shutdown(srv *http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

// healthcheck asks the probe configured through getenv whether it is ready
// (its /readyz on PROBE_METRICS_ADDR).
func healthcheck(ctx context.Context, getenv func(string) string) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	return health.Probe(ctx, cfg.MetricsAddr)
}
