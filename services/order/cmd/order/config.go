package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/httpserver"
)

// Config is the order service's configuration, read from ORDER_* variables.
// The table in services/order/README.md documents every variable.
type Config struct {
	HTTP         httpserver.Config
	LogLevel     slog.Level
	DatabaseURL  string
	KafkaBrokers []string
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "ORDER_")
	cfg := Config{
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", "127.0.0.1:8081"),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel:     env.LogLevel("LOG_LEVEL", slog.LevelInfo),
		DatabaseURL:  env.URL("DATABASE_URL", "sqlite:.run/data/order.db", "sqlite", "postgres", "postgresql"),
		KafkaBrokers: env.Addrs("KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
	}
	return cfg, env.Err()
}

// LogValue prints the configuration with the database password masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("database_url", config.Redact(c.DatabaseURL)),
		slog.Any("kafka_brokers", c.KafkaBrokers),
	)
}
