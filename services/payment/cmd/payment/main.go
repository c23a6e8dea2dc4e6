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
	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/payment/internal/checkout"
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

// run opens the service's dependencies, serves HTTP, relays the outbox and
// handles the checkout saga's payment commands until ctx ends. Then HTTP
// drains, the consumer stops (finishing the message in hand), the relay
// stops, and the writer, the consumer and the database close; run returns
// once every goroutine it started has ended.
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
	if err := ensureTopics(ctx, kafka); err != nil {
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
	commands := checkout.New(db.DB, payments, relay, time.Now, log)
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          kafka,
		GroupID:         consumerGroup,
		Topics:          []string{checkoutv1.TopicPaymentCommands},
		DeadLetterTopic: checkoutv1.DLQTopic(checkoutv1.TopicPaymentCommands),
		AfterHandle:     messaging.CrashAfterHandle(cfg.CrashAfterHandle, os.Exit, log),
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

	// The relay and the consumer outlive ctx: they stop one after the
	// other once HTTP has drained, each finishing what it has in hand. A
	// consumer that fails stops the service.
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	relayCtx, stopRelay := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRelay()
	consumerCtx, stopConsumer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsumer()
	relayDone := make(chan struct{})
	go func() {
		defer close(relayDone)
		relay.Run(relayCtx)
	}()
	consumerErr := make(chan error, 1)
	go func() {
		defer stopServing()
		consumerErr <- consumer.Run(consumerCtx)
	}()

	serveErr := httpserver.Serve(serveCtx, log, cfg.HTTP, router, checks)
	stopConsumer()
	runErr := <-consumerErr
	log.Info("consumer stopped")
	stopRelay()
	<-relayDone
	log.Info("outbox relay stopped")
	return errors.Join(serveErr, runErr)
}

// consumerGroup is the Kafka consumer group of the payment commands.
const consumerGroup = "payment"

// ensureTopics creates the topics payment consumes and produces, and their
// dead-letter topics, unless they exist: the embedded broker loses topics
// created automatically when it crashes.
func ensureTopics(ctx context.Context, kafka messaging.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return messaging.EnsureTopics(ctx, kafka, topicPartitions,
		checkoutv1.TopicPaymentCommands, checkoutv1.DLQTopic(checkoutv1.TopicPaymentCommands),
		checkoutv1.TopicReplies, checkoutv1.DLQTopic(checkoutv1.TopicReplies))
}

// topicPartitions is the partition count of the topics payment creates.
const topicPartitions = 3
