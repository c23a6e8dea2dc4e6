package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/sagaservice"
)

// defaultHTTPAddr is where the service listens natively, unless configured;
// its healthcheck mode probes the same default.
const defaultHTTPAddr = "127.0.0.1:8081"

// Config is the order service's configuration, read from ORDER_* variables.
// The table in services/order/README.md documents every variable.
type Config struct {
	// Config holds what every saga service has: HTTP, log level,
	// database, Kafka, consumer concurrency, the chaos crash.
	sagaservice.Config
	// ReserveTimeout, ChargeTimeout and CommitTimeout are the saga's step
	// deadlines.
	ReserveTimeout time.Duration
	ChargeTimeout  time.Duration
	CommitTimeout  time.Duration
	// Saga tunes the orchestrator's background round (Now stays nil: the
	// real clock).
	Saga saga.Options
	// CardHashKey keys the HMAC of the card number in an Idempotency-Key's
	// request fingerprint (order.WithCardKey).
	CardHashKey string
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "ORDER_")
	cfg := Config{
		Config:         sagaservice.ReadConfig(env, "order", defaultHTTPAddr),
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
	cfg.CardHashKey = env.String("CARD_HASH_KEY", "")
	return cfg, env.Err()
}

// LogValue prints the configuration with the database password masked and
// the card hash key left out.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("reserve_timeout", c.ReserveTimeout.String()),
		slog.String("charge_timeout", c.ChargeTimeout.String()),
		slog.String("commit_timeout", c.CommitTimeout.String()),
		slog.String("saga_poll_interval", c.Saga.PollInterval.String()),
		slog.String("saga_retry_min", c.Saga.RetryBackoffMin.String()),
		slog.String("saga_retry_max", c.Saga.RetryBackoffMax.String()),
		slog.Int("saga_batch_size", c.Saga.BatchSize),
		slog.Bool("card_hash_key_set", c.CardHashKey != ""),
	)...)
}
