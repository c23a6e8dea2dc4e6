// Command payment runs the payment service: payments and refunds through the
// payment provider. It owns the payment database and answers the checkout
// saga's payment commands over Kafka.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/messaging"
	paymentdb "github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/httpapi"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/payment/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "payment:", err)
		os.Exit(1)
	}
}

// run opens the service's dependencies, serves until ctx ends, then drains
// HTTP and closes the dependencies in reverse order.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "payment", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	db, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()

	kafka := messaging.Config{Brokers: cfg.KafkaBrokers, ClientID: "payment"}

	provider := psp.New(cfg.PSPURL, cfg.PSPTimeout)
	defer provider.Close()
	payments := payment.NewService(paymentdb.New(db.DB), provider, time.Now)

	// The PSP is not a readiness check: payments can be read while it is
	// down, and charges then end PENDING, to be settled later.
	checks := health.New(2 * time.Second)
	checks.Add("database", db.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	httpapi.Routes(router, payments, log)

	return httpserver.Serve(ctx, log, cfg.HTTP, router, checks)
}
