// Command gateway runs the public edge of the shop: the REST API under
// /api/v1 that customers, admins and the storefront call. It owns no
// database; it authenticates callers and routes their requests to the
// inventory and order services (and, for admins, to the payment provider
// simulator's fault settings).
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/httpapi"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

func main() { os.Exit(lifecycle.Main("gateway", run)) }

// run serves until ctx ends, then drains in-flight requests.
//
// The gateway's readiness deliberately does not include the services
// behind it: one slow upstream must not take the whole edge out of the
// load balancer. Each route reports its upstream's failure instead.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
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
	proc, err := process.Start(ctx, "gateway", cfg.Config, getenv, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proc.Close()) }()
	newUpstream := func(name, url string) (*upstream.Client, error) {
		return upstream.New(name, url, cfg.UpstreamTimeout, proc.Telemetry.Transport(name, nil))
	}
	inventory, err := newUpstream("inventory", cfg.InventoryURL)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	orders, err := newUpstream("order", cfg.OrderURL)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	psp, err := newUpstream("psp", cfg.PSPURL)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	up := httpapi.Upstreams{Inventory: inventory, Orders: orders, PSP: psp}
	api, err := httpapi.New(ctx, log, auth.DemoDirectory(), tokens, up)
	if err != nil {
		return err
	}
	api.Register(proc.Router)

	return proc.Run(ctx)
}
