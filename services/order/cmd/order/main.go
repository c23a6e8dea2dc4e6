// Command order runs the order service: orders, their history and, as the
// checkout saga's orchestrator, the saga state. It owns the order database
// and talks to the other services over Kafka.
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
	"github.com/microshop/microshop/services/order/internal/db"
	"github.com/microshop/microshop/services/order/internal/httpapi"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/migrations"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "order:", err)
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
	log := logging.New(stdout, "order", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	orderDB, err := database.OpenMigrated(ctx, cfg.DatabaseURL, migrations.FS, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, orderDB.Close()) }()
	orders := order.NewService(db.NewStore(orderDB), time.Now)

	kafka := messaging.Config{Brokers: cfg.KafkaBrokers, ClientID: "order"}

	checks := health.New(2 * time.Second)
	checks.Add("database", orderDB.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	httpapi.New(orders, log).Register(router)

	return httpserver.Serve(ctx, log, cfg.HTTP, router, checks)
}
