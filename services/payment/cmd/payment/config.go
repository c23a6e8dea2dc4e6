package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/sagaservice"
)

// Config is the payment service's configuration, read from PAYMENT_* variables.
// The table in services/payment/README.md documents every variable.
type Config struct {
	// Config holds what every saga service has: HTTP, log level,
	// database, Kafka, consumer concurrency, the chaos crash.
	sagaservice.Config
	// PSPURL is the payment service provider's base URL.
	PSPURL string
	// PSPTimeout bounds each request to the PSP; one that runs out is ambiguous.
	PSPTimeout time.Duration
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "PAYMENT_")
	cfg := Config{
		Config:     sagaservice.ReadConfig(env, "payment", "127.0.0.1:8083"),
		PSPURL:     env.URL("PSP_URL", "http://127.0.0.1:8090", "http", "https"),
		PSPTimeout: env.Duration("PSP_TIMEOUT", 2*time.Second),
	}
	return cfg, env.Err()
}

// LogValue prints the configuration with the database and PSP passwords masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("psp_url", config.Redact(c.PSPURL)),
		slog.String("psp_timeout", c.PSPTimeout.String()),
	)...)
}
