package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/httpserver"
)

// Config is the gateway's configuration, read from GATEWAY_* variables.
// The table in services/gateway/README.md documents every variable.
type Config struct {
	HTTP     httpserver.Config
	LogLevel slog.Level
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "GATEWAY_")
	cfg := Config{
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", "127.0.0.1:8080"),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel: env.LogLevel("LOG_LEVEL", slog.LevelInfo),
	}
	return cfg, env.Err()
}

// LogValue prints the configuration.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
	)
}
