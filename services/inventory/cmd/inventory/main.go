// Command inventory runs the inventory service: the product catalog, stock
// and reservations. It owns the inventory database and answers the checkout
// saga's stock commands over Kafka.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/httpapi"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		os.Exit(1)
	}
}

// run opens the service's dependencies, starts the reservation expirer and
// serves HTTP until ctx ends, then drains HTTP, stops the expirer and closes
// the dependencies in reverse order.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "inventory", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	conn, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close()) }()

	kafka := messaging.Config{Brokers: cfg.KafkaBrokers, ClientID: "inventory"}
	service := inventory.NewService(db.NewStore(conn), time.Now, cfg.ReservationTTL)

	// The expirer stops with ctx, or when serving fails; run returns only
	// once it has, so it never uses the database after Close.
	expirerCtx, stopExpirer := context.WithCancel(ctx)
	var expirer sync.WaitGroup
	expirer.Go(func() { inventory.NewExpirer(service, cfg.ExpiryInterval, log).Run(expirerCtx) })
	defer func() {
		stopExpirer()
		expirer.Wait()
	}()

	checks := health.New(2 * time.Second)
	checks.Add("database", conn.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	httpapi.Register(router, service, log)

	return httpserver.Serve(ctx, log, cfg.HTTP, router, checks)
}
