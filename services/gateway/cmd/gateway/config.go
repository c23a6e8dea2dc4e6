package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/process"
)

// defaultHTTPAddr is where the service listens natively, unless configured;
// its healthcheck mode probes the same default.
const defaultHTTPAddr = "127.0.0.1:8080"

// Config is the gateway's configuration, read from GATEWAY_* variables.
// The table in services/gateway/README.md documents every variable.
type Config struct {
	// Config is what every process has: HTTP, log level, admin address.
	process.Config
	InventoryURL    string
	OrderURL        string
	PSPURL          string
	UpstreamTimeout time.Duration
	// RetryRatio and RetryReserve are the retry budget of each service
	// behind the gateway: retries add at most RetryRatio to its requests,
	// plus RetryReserve (upstream.NewRetries).
	RetryRatio   float64
	RetryReserve int
	// JWTSecret signs access tokens; empty means a random key per process.
	JWTSecret string
	TokenTTL  time.Duration
	// JaegerURL is the base URL of Jaeger's query service, whose traces
	// the storefront's order page shows; empty: no trace is shown.
	JaegerURL string
	// BreakerRules are the breakers of the order and inventory upstreams:
	// for good in the embedded mode, and in the full mode until Consul KV's
	// microshop/gateway/breaker says otherwise.
	BreakerRules map[string]breaker.Rules
}

// defaultBreakerRules trip a service's breaker when, over 10 s and at least
// 20 calls, half failed or 80 % took over a second (the services answer in
// milliseconds; a second is a sick instance), and probe it again after 5 s
// with 3 calls.
var defaultBreakerRules = map[string]breaker.Rules{
	"order":     {MinRequests: 20, ErrorRatio: 0.5, SlowCall: breaker.Duration(time.Second), SlowRatio: 0.8, OpenFor: breaker.Duration(5 * time.Second), Probes: 3},
	"inventory": {MinRequests: 20, ErrorRatio: 0.5, SlowCall: breaker.Duration(time.Second), SlowRatio: 0.8, OpenFor: breaker.Duration(5 * time.Second), Probes: 3},
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "GATEWAY_")
	cfg := Config{
		Config:          process.ReadConfig(env, defaultHTTPAddr),
		InventoryURL:    env.URL("INVENTORY_URL", "http://127.0.0.1:8082", "http", "https"),
		OrderURL:        env.URL("ORDER_URL", "http://127.0.0.1:8081", "http", "https"),
		PSPURL:          env.URL("PSP_URL", "http://127.0.0.1:8090", "http", "https"),
		UpstreamTimeout: env.Duration("UPSTREAM_TIMEOUT", 5*time.Second),
		RetryRatio:      env.Probability("RETRY_RATIO", 0.1),
		RetryReserve:    env.Int("RETRY_RESERVE", 10, 1, 1_000_000),
		JWTSecret:       env.String("JWT_SECRET", ""),
		TokenTTL:        env.Duration("TOKEN_TTL", time.Hour),
		JaegerURL:       env.URL("JAEGER_URL", "", "http", "https"),
	}
	cfg.Limit = process.ReadLimit(env)
	rules, err := liverules.Parse(env.String("BREAKER_RULES", ""), defaultBreakerRules, breaker.Validate)
	if err != nil {
		return cfg, errors.Join(env.Err(), fmt.Errorf("GATEWAY_BREAKER_RULES: %w", err))
	}
	cfg.BreakerRules = rules
	return cfg, env.Err()
}

// LogValue prints the configuration without the signing secret.
func (c Config) LogValue() slog.Value {
	secret := "(random per process)"
	if c.JWTSecret != "" {
		secret = "(set)"
	}
	return slog.GroupValue(append(c.LogAttrs(),
		slog.String("inventory_url", c.InventoryURL),
		slog.String("order_url", c.OrderURL),
		slog.String("psp_url", c.PSPURL),
		slog.String("upstream_timeout", c.UpstreamTimeout.String()),
		slog.Float64("retry_ratio", c.RetryRatio),
		slog.Int("retry_reserve", c.RetryReserve),
		slog.String("jwt_secret", secret),
		slog.String("token_ttl", c.TokenTTL.String()),
		slog.Any("breaker_rules", c.BreakerRules),
		slog.String("jaeger_url", c.JaegerURL),
	)...)
}
