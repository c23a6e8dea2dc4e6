package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/messaging"
)

// Config is the inventory service's configuration, read from INVENTORY_* variables.
// The table in services/inventory/README.md documents every variable.
type Config struct {
	HTTP         httpserver.Config
	LogLevel     slog.Level
	DatabaseURL  string
	KafkaBrokers []string
	// ReservationTTL is how long stock stays reserved for an order that is
	// neither committed nor released.
	ReservationTTL time.Duration
	// ExpiryInterval is how often overdue reservations are expired.
	ExpiryInterval time.Duration
	// ConsumerConcurrency is how many consumed messages, each of a
	// different partition, are handled at once (messaging.ConsumerConfig's
	// Concurrency).
	ConsumerConcurrency int
	// CrashAfterHandle is the probability, from 0 to 1, that the process
	// exits (code 3) after a consumed message was handled and before it is
	// committed: a fault injected by the chaos harness so that duplicate
	// deliveries really happen. 0, the default, never crashes.
	CrashAfterHandle float64
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "INVENTORY_")
	cfg := Config{
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", "127.0.0.1:8082"),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel:       env.LogLevel("LOG_LEVEL", slog.LevelInfo),
		DatabaseURL:    env.URL("DATABASE_URL", "sqlite:.run/data/inventory.db", "sqlite", "postgres", "postgresql"),
		KafkaBrokers:   env.Addrs("KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
		ReservationTTL: env.Duration("RESERVATION_TTL", 15*time.Minute),
		ExpiryInterval: env.Duration("EXPIRY_INTERVAL", 30*time.Second),
	}
	cfg.ConsumerConcurrency = env.Int("CONSUMER_CONCURRENCY", 8, 1, messaging.MaxConcurrency)
	cfg.CrashAfterHandle = env.Probability("CHAOS_CRASH_AFTER_HANDLE", 0)
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
		slog.String("reservation_ttl", c.ReservationTTL.String()),
		slog.String("expiry_interval", c.ExpiryInterval.String()),
		slog.Int("consumer_concurrency", c.ConsumerConcurrency),
		slog.Float64("chaos_crash_after_handle", c.CrashAfterHandle),
	)
}
