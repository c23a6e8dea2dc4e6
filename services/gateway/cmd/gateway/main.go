// Command gateway runs the public edge of the shop: the REST API under
// /api/v1 that customers, admins and the storefront call. It owns no
// database; it authenticates callers and routes their requests to the
// inventory and order services (and, for admins, to the payment provider
// simulator's fault settings).
package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/httpapi"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

func main() { os.Exit(lifecycle.Main("gateway", run)) }

// run serves until ctx ends, then drains in-flight requests.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "gateway", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	key := []byte(cfg.JWTSecret)
	if len(key) == 0 {
		key = []byte(rand.Text() + rand.Text())
		log.Warn("GATEWAY_JWT_SECRET is not set: signing tokens with a random key, so they do not survive a restart and are not shared between replicas")
	}
	tokens, err := auth.NewTokens(key, cfg.TokenTTL, time.Now)
	if err != nil {
		return fmt.Errorf("configuration: GATEWAY_JWT_SECRET: %w", err)
	}
	inventory, err := upstream.New("inventory", cfg.InventoryURL, cfg.UpstreamTimeout)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	orders, err := upstream.New("order", cfg.OrderURL, cfg.UpstreamTimeout)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	psp, err := upstream.New("psp", cfg.PSPURL, cfg.UpstreamTimeout)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	up := httpapi.Upstreams{Inventory: inventory, Orders: orders, PSP: psp}
	api, err := httpapi.New(ctx, log, auth.DemoDirectory(), tokens, up)
	if err != nil {
		return err
	}

	// The gateway's readiness deliberately does not include the services
	// behind it: one slow upstream must not take the whole edge out of the
	// load balancer. Each route reports its upstream's failure instead.
	checks := health.New(2 * time.Second)
	router := httpserver.NewRouter(log, checks)
	api.Register(router)

	return httpserver.Serve(ctx, log, cfg.HTTP, router, checks)
}
