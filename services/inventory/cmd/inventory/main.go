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
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/faultinject"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/httpapi"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/kafkaapi"
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

// run opens the service's dependencies and starts its background work (the
// outbox relay publishing replies, the reservation expirer and the consumer
// of the checkout saga's commands), then serves HTTP until ctx ends. It stops
// in reverse: HTTP drains, the consumer finishes the command in hand, the
// expirer and the relay stop, and the writer and the database close. It
// returns only once every goroutine it started has ended. If the consumer
// fails, the service stops with its error.
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
	if err := outbox.Migrate(ctx, conn, log); err != nil {
		return err
	}
	if err := saga.MigrateBarrier(ctx, conn, log); err != nil {
		return err
	}

	kafka := messaging.Config{Brokers: cfg.KafkaBrokers, ClientID: "inventory"}
	topics := []string{
		checkoutv1.TopicInventoryCommands, checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands),
		checkoutv1.TopicReplies, checkoutv1.DLQTopic(checkoutv1.TopicReplies),
	}
	if err := messaging.EnsureTopicsWithRetry(ctx, kafka, checkoutv1.TopicPartitions, log, topics...); err != nil {
		return err
	}
	metrics := prometheus.NewRegistry()
	store := db.NewStore(conn)
	service := inventory.NewService(store, time.Now, cfg.ReservationTTL)

	writer := messaging.NewWriter(kafka)
	defer func() { err = errors.Join(err, writer.Close()) }()
	relay, err := outbox.NewRelay(conn, writer, outbox.RelayOptions{}, log, metrics)
	if err != nil {
		return err
	}
	inTx := func(tx *gorm.DB) *inventory.Service { return service.WithStore(store.InTx(tx)) }
	handler, err := kafkaapi.NewHandler(conn, inTx, relay, time.Now, log, metrics)
	if err != nil {
		return err
	}
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          kafka,
		GroupID:         "inventory",
		Topics:          []string{checkoutv1.TopicInventoryCommands},
		DeadLetterTopic: checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands),
		Concurrency:     cfg.ConsumerConcurrency,
		AfterHandle:     faultinject.CrashAfterHandle(cfg.CrashAfterHandle, os.Exit, log),
	}, handler.Handle, log, metrics)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()
	expirer := inventory.NewExpirer(service, cfg.ExpiryInterval, log)

	checks := health.New(2 * time.Second)
	checks.Add("database", conn.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	router.GET("/metrics", gin.WrapH(promhttp.HandlerFor(metrics, promhttp.HandlerOpts{})))
	httpapi.Register(router, service, log)

	// Started in this order, stopped in reverse once HTTP has drained, each
	// after the one stopped before it returned.
	serve := func(ctx context.Context) error { return httpserver.Serve(ctx, log, cfg.HTTP, router, checks) }
	return lifecycle.Run(ctx, log, serve,
		lifecycle.Task{Name: "outbox relay", Run: lifecycle.NoError(relay.Run)},
		lifecycle.Task{Name: "reservation expirer", Run: lifecycle.NoError(expirer.Run)},
		lifecycle.Task{Name: "commands consumer", Run: consumer.Run},
	)
}
