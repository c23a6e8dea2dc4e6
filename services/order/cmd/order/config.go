package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/saga"
)

// Config is the order service's configuration, read from ORDER_* variables.
// The table in services/order/README.md documents every variable.
type Config struct {
	HTTP         httpserver.Config
	LogLevel     slog.Level
	DatabaseURL  string
	KafkaBrokers []string
	// ReserveTimeout, ChargeTimeout and CommitTimeout are the saga's step
	// deadlines.
	ReserveTimeout time.Duration
	ChargeTimeout  time.Duration
	CommitTimeout  time.Duration
	// Saga tunes the orchestrator's background round (Now stays nil: the
	// real clock).
	Saga saga.Options
	// ConsumerConcurrency is how many consumed messages, each of a
	// different partition, are handled at once (messaging.ConsumerConfig's
	// Concurrency).
	ConsumerConcurrency int
	// CrashAfterHandle is the probability, from 0 to 1, that the process
	// exits (code 3) after a consumed message was handled and before it is
	// committed: a fault injected by the chaos harness so that duplicate
	// deliveries really happen. 0, the default, never crashes.
	CrashAfterHandle float64
	// CardHashKey keys the HMAC of the card number in an Idempotency-Key's
	// request fingerprint (order.WithCardKey).
	CardHashKey string
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

		ReserveTimeout: env.Duration("RESERVE_TIMEOUT", 10*time.Second),
		ChargeTimeout:  env.Duration("CHARGE_TIMEOUT", 15*time.Second),
		CommitTimeout:  env.Duration("COMMIT_TIMEOUT", 10*time.Second),
		Saga: saga.Options{
			PollInterval:    env.Duration("SAGA_POLL_INTERVAL", 200*time.Millisecond),
			RetryBackoffMin: env.Duration("SAGA_RETRY_MIN", time.Second),
			RetryBackoffMax: env.Duration("SAGA_RETRY_MAX", time.Minute),
			BatchSize:       env.Int("SAGA_BATCH_SIZE", 100, 1, 10000),
		},
	}
	cfg.ConsumerConcurrency = env.Int("CONSUMER_CONCURRENCY", 8, 1, messaging.MaxConcurrency)
	cfg.CrashAfterHandle = env.Probability("CHAOS_CRASH_AFTER_HANDLE", 0)
	cfg.CardHashKey = env.String("CARD_HASH_KEY", "")
	return cfg, env.Err()
}

// LogValue prints the configuration with the database password masked and
// the card hash key left out.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("database_url", config.Redact(c.DatabaseURL)),
		slog.Any("kafka_brokers", c.KafkaBrokers),
		slog.String("reserve_timeout", c.ReserveTimeout.String()),
		slog.String("charge_timeout", c.ChargeTimeout.String()),
		slog.String("commit_timeout", c.CommitTimeout.String()),
		slog.String("saga_poll_interval", c.Saga.PollInterval.String()),
		slog.String("saga_retry_min", c.Saga.RetryBackoffMin.String()),
		slog.String("saga_retry_max", c.Saga.RetryBackoffMax.String()),
		slog.Int("saga_batch_size", c.Saga.BatchSize),
		slog.Int("consumer_concurrency", c.ConsumerConcurrency),
		slog.Float64("chaos_crash_after_handle", c.CrashAfterHandle),
		slog.Bool("card_hash_key_set", c.CardHashKey != ""),
	)
}
