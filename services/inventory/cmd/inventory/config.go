package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/sagaservice"
)

// defaultHTTPAddr is where the service listens natively, unless configured;
// its healthcheck mode probes the same default.
const defaultHTTPAddr = "127.0.0.1:8082"

// Config is the inventory service's configuration, read from INVENTORY_* variables.
// The table in services/inventory/README.md documents every variable.
type Config struct {
	// Config holds what every saga service has: HTTP, log level,
	// database, Kafka, consumer concurrency, the chaos crash.
	sagaservice.Config
	// ReservationTTL is how long stock stays reserved for an order that is
	// neither committed nor released.
	ReservationTTL time.Duration
	// ExpiryInterval is how often overdue reservations are expired.
	ExpiryInterval time.Duration
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "INVENTORY_")
	cfg := Config{
		Config:         sagaservice.ReadConfig(env, "inventory", defaultHTTPAddr),
		ReservationTTL: env.Duration("RESERVATION_TTL", 15*time.Minute),
		ExpiryInterval: env.Duration("EXPIRY_INTERVAL", 30*time.Second),
	}
	return cfg, env.Err()
}

// LogValue prints the configuration with the database password masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("reservation_ttl", c.ReservationTTL.String()),
		slog.String("expiry_interval", c.ExpiryInterval.String()),
	)...)
}
