package main

import (
	"log/slog"
	"time"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/process"
)

// Config is the gateway's configuration, read from GATEWAY_* variables.
// The table in services/gateway/README.md documents every variable.
type Config struct {
	// Config is what every process has: HTTP, log level, admin address.
	process.Config
	InventoryURL    string
	OrderURL        string
	PSPURL          string
	UpstreamTimeout time.Duration
	// JWTSecret signs access tokens; empty means a random key per process.
	JWTSecret string
	TokenTTL  time.Duration
}

func loadConfig(getenv func(string) string) (Config, error) {
	env := config.New(getenv, "GATEWAY_")
	cfg := Config{
		Config:          process.ReadConfig(env, "127.0.0.1:8080"),
		InventoryURL:    env.URL("INVENTORY_URL", "http://127.0.0.1:8082", "http", "https"),
		OrderURL:        env.URL("ORDER_URL", "http://127.0.0.1:8081", "http", "https"),
		PSPURL:          env.URL("PSP_URL", "http://127.0.0.1:8090", "http", "https"),
		UpstreamTimeout: env.Duration("UPSTREAM_TIMEOUT", 5*time.Second),
		JWTSecret:       env.String("JWT_SECRET", ""),
		TokenTTL:        env.Duration("TOKEN_TTL", time.Hour),
	}
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
		slog.String("jwt_secret", secret),
		slog.String("token_ttl", c.TokenTTL.String()),
	)...)
}
