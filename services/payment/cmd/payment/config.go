package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/sagaservice"
)

// defaultHTTPAddr is where the service listens natively, unless configured;
// its healthcheck mode probes the same default.
const defaultHTTPAddr = "127.0.0.1:8083"

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
	// BreakerRules are the PSP's breaker (upstream "psp"): for good in the
	// embedded mode, and in the full mode until Consul KV's
	// microshop/payment/breaker says otherwise.
	BreakerRules map[string]breaker.Rules
}

// defaultBreakerRules trip the PSP's breaker when, over 10 s and at least
// 10 calls, half failed or half took over a second (half the PSP timeout),
// and let one trial call through after 5 s.
var defaultBreakerRules = map[string]breaker.Rules{
	"psp": {MinRequests: 10, ErrorRatio: 0.5, SlowCall: breaker.Duration(time.Second), SlowRatio: 0.5, OpenFor: breaker.Duration(5 * time.Second), Probes: 1},
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "PAYMENT_")
	cfg := Config{
		Config:     sagaservice.ReadConfig(env, "payment", defaultHTTPAddr),
		PSPURL:     env.URL("PSP_URL", "http://127.0.0.1:8090", "http", "https"),
		PSPTimeout: env.Duration("PSP_TIMEOUT", 2*time.Second),
	}
	rules, err := liverules.Parse(env.String("BREAKER_RULES", ""), defaultBreakerRules, breaker.Validate)
	if err != nil {
		return cfg, errors.Join(env.Err(), fmt.Errorf("PAYMENT_BREAKER_RULES: %w", err))
	}
	cfg.BreakerRules = rules
	return cfg, env.Err()
}

// LogValue prints the configuration with the database and PSP passwords masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("psp_url", config.Redact(c.PSPURL)),
		slog.String("psp_timeout", c.PSPTimeout.String()),
		slog.Any("breaker_rules", c.BreakerRules),
	)...)
}
