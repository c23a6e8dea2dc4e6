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
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/limit"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/sagaservice"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/httpapi"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/kafkaapi"
	"github.com/microshop/microshop/services/inventory/migrations"
)

func main() { os.Exit(process.Main("inventory", defaultHTTPAddr, run)) }

// run opens the service's parts (sagaservice.Open), adds its own — the
// reservation expirer, the consumer of the checkout saga's stock commands,
// the catalog API — and serves until ctx ends: the outbox relay publishing
// replies, the expirer and the consumer run in the background and stop in
// reverse once HTTP drained. It returns once every goroutine ended. If the
// consumer fails, the service stops with its error.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "inventory", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	svc, err := sagaservice.Open(ctx, sagaservice.Spec{
		Name: "inventory", Migrations: migrations.FS, Migrate: saga.MigrateBarrier,
		Topics: checkoutv1.WithDLQ(checkoutv1.TopicInventoryCommands, checkoutv1.TopicReplies), Partitions: checkoutv1.TopicPartitions,
		// Browsing is shed first; an admin's stock adjustment never.
		Limit: map[string]limit.Route{
			"GET /v1/products": {Priority: limit.Low}, "GET /v1/products/:sku": {Priority: limit.Low},
			"POST /v1/products/:sku/stock-adjustments": {Priority: limit.Critical},
		},
	}, cfg.Config, getenv, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.Close()) }()

	store := db.NewStore(svc.DB)
	stock := inventory.NewService(store, time.Now, cfg.ReservationTTL)
	inTx := func(tx *gorm.DB) *inventory.Service { return stock.WithStore(store.InTx(tx)) }
	commands, err := kafkaapi.NewHandler(svc.DB, inTx, svc.Relay, time.Now, log, svc.Metrics)
	if err != nil {
		return err
	}
	if err := svc.Consume(checkoutv1.TopicInventoryCommands, checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands), commands.Handle); err != nil {
		return err
	}
	httpapi.Register(svc.Router, stock, log)

	expirer := inventory.NewExpirer(stock, cfg.ExpiryInterval, log)
	return svc.Run(ctx, lifecycle.Task{Name: "reservation expirer", Run: lifecycle.NoError(expirer.Run)})
}
