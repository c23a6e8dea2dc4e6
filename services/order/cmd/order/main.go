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
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/limit"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/sagaservice"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/checkout"
	"github.com/microshop/microshop/services/order/internal/db"
	"github.com/microshop/microshop/services/order/internal/httpapi"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/migrations"
)

func main() { os.Exit(process.Main("order", defaultHTTPAddr, run)) }

// run opens the service's parts (sagaservice.Open), adds its own — the
// checkout saga's orchestrator, the consumer of its replies, the order API —
// and serves until ctx ends: the outbox relay, the orchestrator's round and
// the consumer run in the background and stop in reverse once HTTP drained.
// It returns once every goroutine ended. If the consumer fails, the service
// stops with its error.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "order", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	// The orchestrator produces or consumes every checkout topic.
	svc, err := sagaservice.Open(ctx, sagaservice.Spec{
		Name: "order", Migrations: migrations.FS, Migrate: saga.MigrateOrchestrator,
		Topics: checkoutv1.WithDLQ(checkoutv1.Topics()...), Partitions: checkoutv1.TopicPartitions,
		// A checkout in progress — placing the order, polling it — is shed
		// after the order lists.
		Limit: map[string]limit.Route{"POST /v1/orders": {Priority: limit.High}, "GET /v1/orders/:id": {Priority: limit.High}},
	}, cfg.Config, getenv, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.Close()) }()

	store := db.NewStore(svc.DB)
	sagas, err := checkout.New(svc.DB, func(tx *gorm.DB) checkout.Orders { return store.InTx(tx) }, checkout.Config{
		ReserveTimeout: cfg.ReserveTimeout,
		ChargeTimeout:  cfg.ChargeTimeout,
		CommitTimeout:  cfg.CommitTimeout,
		Saga:           cfg.Saga,
	}, svc.Relay.Notify, log, svc.Metrics)
	if err != nil {
		return err
	}
	if err := svc.Consume(checkoutv1.TopicReplies, checkoutv1.DLQTopic(checkoutv1.TopicReplies), sagas.HandleReply); err != nil {
		return err
	}
	httpapi.Register(svc.Router, order.NewService(store, sagas, time.Now, order.WithCardKey([]byte(cfg.CardHashKey))), log)

	return svc.Run(ctx, lifecycle.Task{Name: "saga orchestrator", Run: lifecycle.NoError(sagas.Run)})
}
