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

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
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
// reservation expirer, the outbox relay publishing replies and the consumer
// of the checkout saga's commands), then serves HTTP until ctx ends. It stops
// in order: HTTP drains, the consumer finishes the command in hand, the relay
// stops and its writer closes, the expirer stops, and the database closes.
// It returns only once every goroutine it started has ended. If the consumer
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
	if err := ensureTopics(ctx, kafka, log); err != nil {
		return err
	}
	metrics := prometheus.NewRegistry()
	store := db.NewStore(conn)
	service := inventory.NewService(store, time.Now, cfg.ReservationTTL)

	writer := messaging.NewWriter(kafka)
	relay, err := outbox.NewRelay(conn, writer, outbox.RelayOptions{}, log, metrics)
	if err != nil {
		return errors.Join(err, writer.Close())
	}
	inTx := func(tx *gorm.DB) *inventory.Service { return service.WithStore(store.InTx(tx)) }
	handler, err := kafkaapi.NewHandler(conn, inTx, relay, time.Now, log, metrics)
	if err != nil {
		return errors.Join(err, writer.Close())
	}
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          kafka,
		GroupID:         "inventory",
		Topics:          []string{checkoutv1.TopicInventoryCommands},
		DeadLetterTopic: checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands),
		AfterHandle:     messaging.CrashAfterHandle(cfg.CrashAfterHandle, os.Exit, log),
	}, handler.Handle, log, metrics)
	if err != nil {
		return errors.Join(err, writer.Close())
	}

	// Background work runs on contexts of its own, cancelled one after the
	// other once serving has ended, so each stops after what feeds it. The
	// deferred calls run in reverse: consumer, relay and writer, expirer.
	expirerCtx, stopExpirer := context.WithCancel(context.WithoutCancel(ctx))
	var expirer sync.WaitGroup
	expirer.Go(func() { inventory.NewExpirer(service, cfg.ExpiryInterval, log).Run(expirerCtx) })
	defer func() {
		stopExpirer()
		expirer.Wait()
	}()

	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	var relaying sync.WaitGroup
	relaying.Go(func() { relay.Run(relayCtx) })
	defer func() {
		stopRelay()
		relaying.Wait()
		err = errors.Join(err, writer.Close())
	}()

	// A consumer that fails ends serving, and run returns its error.
	serveCtx, stopServing := context.WithCancelCause(ctx)
	defer stopServing(nil)
	consumerCtx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	consumed := make(chan error, 1)
	go func() {
		err := consumer.Run(consumerCtx)
		if err != nil {
			stopServing(err)
		}
		consumed <- err
	}()
	defer func() {
		stopConsumer()
		err = errors.Join(err, <-consumed, consumer.Close())
	}()

	checks := health.New(2 * time.Second)
	checks.Add("database", conn.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	router.GET("/metrics", gin.WrapH(promhttp.HandlerFor(metrics, promhttp.HandlerOpts{})))
	httpapi.Register(router, service, log)

	return httpserver.Serve(serveCtx, log, cfg.HTTP, router, checks)
}

// ensureTopics creates the topics the service consumes and produces, and
// their dead-letter topics, retrying every second while Kafka is not
// reachable, until ctx ends.
func ensureTopics(ctx context.Context, kafka messaging.Config, log *slog.Logger) error {
	topics := []string{
		checkoutv1.TopicInventoryCommands, checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands),
		checkoutv1.TopicReplies, checkoutv1.DLQTopic(checkoutv1.TopicReplies),
	}
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := messaging.EnsureTopics(attemptCtx, kafka, topicPartitions, topics...)
		cancel()
		if err == nil {
			return nil
		}
		log.Warn("create kafka topics failed; will retry", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("create kafka topics: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// topicPartitions is the partition count of the topics the service creates.
const topicPartitions = 3
