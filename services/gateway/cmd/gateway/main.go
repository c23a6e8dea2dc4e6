// Command gateway runs the public edge of the shop: the REST API under
// /api/v1 that customers and the storefront call. It owns no database; it
// routes requests to the order, inventory and payment services.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then drains in-flight requests.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "gateway", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	// The gateway's readiness deliberately does not include the services
	// behind it: one slow upstream must not take the whole edge out of the
	// load balancer. Each route reports its upstream's failure instead.
	checks := health.New(2 * time.Second)
	router := httpserver.NewRouter(log, checks)

	return httpserver.Serve(ctx, log, cfg.HTTP, router, checks)
}
