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

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/checkout"
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

// run opens the service's dependencies, starts its background work (the
// outbox relay, the saga orchestrator's round, the replies consumer), serves
// HTTP until ctx ends, then stops in reverse: HTTP drains, the consumer
// finishes the message in hand, the orchestrator and the relay stop, the
// writer and the database close. It returns once every goroutine ended. If
// the consumer fails, the service stops with its error.
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
	if err := outbox.Migrate(ctx, orderDB, log); err != nil {
		return err
	}
	if err := saga.MigrateOrchestrator(ctx, orderDB, log); err != nil {
		return err
	}

	kafka := messaging.Config{Brokers: cfg.KafkaBrokers, ClientID: "order"}
	if err := messaging.EnsureTopicsWithRetry(ctx, kafka, checkoutv1.TopicPartitions, log, topics()...); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	writer := messaging.NewWriter(kafka)
	defer func() { err = errors.Join(err, writer.Close()) }()
	relay, err := outbox.NewRelay(orderDB, writer, outbox.RelayOptions{}, log, reg)
	if err != nil {
		return err
	}
	sagas, err := checkout.New(orderDB, checkout.Config{
		ReserveTimeout: cfg.ReserveTimeout,
		ChargeTimeout:  cfg.ChargeTimeout,
		CommitTimeout:  cfg.CommitTimeout,
		Saga:           cfg.Saga,
	}, relay.Notify, log, reg)
	if err != nil {
		return err
	}
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          kafka,
		GroupID:         "order",
		Topics:          []string{checkoutv1.TopicReplies},
		DeadLetterTopic: checkoutv1.DLQTopic(checkoutv1.TopicReplies),
		Concurrency:     cfg.ConsumerConcurrency,
		AfterHandle:     messaging.CrashAfterHandle(cfg.CrashAfterHandle, os.Exit, log),
	}, sagas.HandleReply, log, reg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()
	orders := order.NewService(db.NewStore(orderDB, sagas), time.Now, order.WithCardKey([]byte(cfg.CardHashKey)))

	checks := health.New(2 * time.Second)
	checks.Add("database", orderDB.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	router.GET("/metrics", gin.WrapH(promhttp.HandlerFor(reg, promhttp.HandlerOpts{})))
	httpapi.New(orders, log).Register(router)

	// Started in this order, stopped in reverse once HTTP has drained, each
	// after the one stopped before it returned.
	serve := func(ctx context.Context) error { return httpserver.Serve(ctx, log, cfg.HTTP, router, checks) }
	return lifecycle.Run(ctx, log, serve,
		lifecycle.Task{Name: "outbox relay", Run: lifecycle.NoError(relay.Run)},
		lifecycle.Task{Name: "saga orchestrator", Run: lifecycle.NoError(sagas.Run)},
		lifecycle.Task{Name: "replies consumer", Run: consumer.Run},
	)
}

// topics are the topics the service produces or consumes, and their
// dead-letter topics, created at start-up: the embedded broker loses
// auto-created topics on a crash.
func topics() []string {
	var all []string
	for _, t := range checkoutv1.Topics() {
		all = append(all, t, checkoutv1.DLQTopic(t))
	}
	return all
}
