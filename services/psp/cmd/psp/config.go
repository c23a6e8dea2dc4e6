package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/services/psp/simulator"
)

// Config is the simulator's configuration, read from PSP_* variables.
// The table in services/psp/README.md documents every variable.
type Config struct {
	HTTP     httpserver.Config
	LogLevel slog.Level
	// Hang is how long a charge of the hanging test card holds its response.
	Hang time.Duration
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "PSP_")
	cfg := Config{
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", "127.0.0.1:8090"),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel: env.LogLevel("LOG_LEVEL", slog.LevelInfo),
		Hang:     env.Duration("HANG", simulator.DefaultHang),
	}
	return cfg, env.Err()
}

// LogValue prints the configuration (it holds no secrets).
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("hang", c.Hang.String()),
	)
}
