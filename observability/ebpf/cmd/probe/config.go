package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/pkg/config"
)

// Config is the probe's configuration, read from PROBE_* variables. The
// table in observability/ebpf/README.md documents every variable.
type Config struct {
	// MetricsAddr is where /metrics, /healthz and /readyz are served.
	MetricsAddr string
	// Processes are the executables to watch: file names, or absolute
	// paths (that file only).
	Processes []string
	// PIDs are processes to watch whatever their name.
	PIDs []int
	// Routes are ServeMux patterns that label request paths by route.
	Routes []string
	// ScanInterval is how often /proc is scanned for targets started and gone.
	ScanInterval time.Duration
	// ProgramStats exports the BPF programs' run counts and times.
	ProgramStats bool
	LogLevel     slog.Level
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "PROBE_")
	cfg := Config{
		MetricsAddr:  env.Addr("METRICS_ADDR", "127.0.0.1:9400"),
		Routes:       list(env.String("ROUTES", "")),
		ScanInterval: env.Duration("SCAN_INTERVAL", time.Second),
		LogLevel:     env.LogLevel("LOG_LEVEL", slog.LevelInfo),
	}
	errs := []error{env.Err()}
	for _, s := range list(env.String("PIDS", "")) {
		pid, err := strconv.Atoi(s)
		if err != nil || pid <= 0 {
			errs = append(errs, fmt.Errorf("PROBE_PIDS: %q is not a comma-separated list of process ids", s))
			continue
		}
		cfg.PIDs = append(cfg.PIDs, pid)
	}
	// The shop's services by default, unless PIDs alone are asked for.
	defaultProcesses := "gateway,order,inventory,payment,psp"
	if len(cfg.PIDs) > 0 {
		defaultProcesses = ""
	}
	cfg.Processes = list(env.String("PROCESSES", defaultProcesses))
	if s := env.String("PROGRAM_STATS", "false"); s != "" {
		on, err := strconv.ParseBool(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("PROBE_PROGRAM_STATS: %q is not true or false", s))
		}
		cfg.ProgramStats = on
	}
	return cfg, errors.Join(errs...)
}

// list splits a comma-separated value, dropping empty items.
func list(s string) []string {
	var items []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// LogValue prints the configuration (it holds no secrets).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("metrics_addr", c.MetricsAddr),
		slog.Any("processes", c.Processes),
		slog.Any("pids", c.PIDs),
		slog.Any("routes", c.Routes),
		slog.String("scan_interval", c.ScanInterval.String()),
		slog.Bool("program_stats", c.ProgramStats),
		slog.String("log_level", c.LogLevel.String()),
	)
}
