package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/limit"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/services/psp/simulator"
)

// defaultHTTPAddr is where the service listens natively, unless configured;
// its healthcheck mode probes the same default.
const defaultHTTPAddr = "127.0.0.1:8090"

// Config is the simulator's configuration, read from PSP_* variables.
// The table in services/psp/README.md documents every variable.
type Config struct {
	// Config is what every process has: HTTP, log level, admin address.
	process.Config
	// Hang is how long a charge of the hanging test card holds its response.
	Hang time.Duration
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "PSP_")
	cfg := Config{
		Config: process.ReadConfig(env, defaultHTTPAddr),
		Hang:   env.Duration("HANG", simulator.DefaultHang),
	}
	// The simulator stands in for a third party, whose limits are not
	// ours: it is never limited.
	cfg.Limit = limit.Rules{Adaptive: limit.None}
	return cfg, env.Err()
}

// LogValue prints the configuration (it holds no secrets).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(), slog.String("hang", c.Hang.String()))...)
}
