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

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

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
	"github.com/microshop/microshop/services/payment/internal/kafkaapi"
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

// run opens the service's dependencies, starts its background work (the
// outbox relay, the consumer of the checkout saga's payment commands) and
// serves HTTP until ctx ends. Then HTTP drains, the consumer stops (finishing
// the message in hand), the relay stops, and the consumer, the writer, the
// PSP client and the database close; run returns once every goroutine it
// started has ended. If the consumer fails, the service stops with its error.
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
	if err := outbox.Migrate(ctx, db, log); err != nil {
		return err
	}
	if err := saga.MigrateBarrier(ctx, db, log); err != nil {
		return err
	}

	kafka := messaging.Config{Brokers: cfg.KafkaBrokers, ClientID: "payment"}
	topics := []string{
		checkoutv1.TopicPaymentCommands, checkoutv1.DLQTopic(checkoutv1.TopicPaymentCommands),
		checkoutv1.TopicReplies, checkoutv1.DLQTopic(checkoutv1.TopicReplies),
	}
	if err := messaging.EnsureTopicsWithRetry(ctx, kafka, checkoutv1.TopicPartitions, log, topics...); err != nil {
		return err
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	provider := psp.New(cfg.PSPURL, cfg.PSPTimeout)
	defer provider.Close()
	payments := payment.NewService(paymentdb.New(db.DB), provider, time.Now)

	writer := messaging.NewWriter(kafka)
	defer func() { err = errors.Join(err, writer.Close()) }()
	relay, err := outbox.NewRelay(db, writer, outbox.RelayOptions{}, log, registry)
	if err != nil {
		return err
	}
	commands := kafkaapi.NewHandler(db, payments, relay, time.Now, log)
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          kafka,
		GroupID:         consumerGroup,
		Topics:          []string{checkoutv1.TopicPaymentCommands},
		DeadLetterTopic: checkoutv1.DLQTopic(checkoutv1.TopicPaymentCommands),
		Concurrency:     cfg.ConsumerConcurrency,
		AfterHandle:     faultinject.CrashAfterHandle(cfg.CrashAfterHandle, os.Exit, log),
	}, commands.Handle, log, registry)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()

	// The PSP is not a readiness check: payments can be read while it is
	// down, and charges then end PENDING, to be settled later.
	checks := health.New(2 * time.Second)
	checks.Add("database", db.Ping)
	checks.Add("kafka", kafka.Ping)
	router := httpserver.NewRouter(log, checks)
	router.GET("/metrics", gin.WrapH(promhttp.HandlerFor(registry, promhttp.HandlerOpts{Registry: registry})))
	httpapi.Routes(router, payments, log)

	// Started in this order, stopped in reverse once HTTP has drained, each
	// after the one stopped before it returned.
	serve := func(ctx context.Context) error { return httpserver.Serve(ctx, log, cfg.HTTP, router, checks) }
	return lifecycle.Run(ctx, log, serve,
		lifecycle.Task{Name: "outbox relay", Run: lifecycle.NoError(relay.Run)},
		lifecycle.Task{Name: "commands consumer", Run: consumer.Run},
	)
}

// consumerGroup is the Kafka consumer group of the payment commands.
const consumerGroup = "payment"
