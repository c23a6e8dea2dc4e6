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
	HTTP            httpserver.Config
	LogLevel        slog.Level
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
		HTTP: httpserver.Config{
			Addr:            env.Addr("HTTP_ADDR", "127.0.0.1:8080"),
			ShutdownTimeout: env.Duration("SHUTDOWN_TIMEOUT", 10*time.Second),
		},
		LogLevel:        env.LogLevel("LOG_LEVEL", slog.LevelInfo),
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
	return slog.GroupValue(
		slog.String("http_addr", c.HTTP.Addr),
		slog.String("shutdown_timeout", c.HTTP.ShutdownTimeout.String()),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("inventory_url", c.InventoryURL),
		slog.String("order_url", c.OrderURL),
		slog.String("psp_url", c.PSPURL),
		slog.String("upstream_timeout", c.UpstreamTimeout.String()),
		slog.String("jwt_secret", secret),
		slog.String("token_ttl", c.TokenTTL.String()),
	)
}
