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
	"net/http"
	"os"
	"time"

	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/sagaservice"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/httpapi"
	"github.com/microshop/microshop/services/payment/internal/kafkaapi"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/payment/migrations"
)

func main() { os.Exit(process.Main("payment", defaultHTTPAddr, run)) }

// run opens the service's parts (sagaservice.Open), adds its own — the PSP
// client, the consumer of the checkout saga's payment commands, the payments
// API — and serves until ctx ends: the outbox relay and the consumer run in
// the background and stop in reverse once HTTP drained, then the PSP client
// closes. It returns once every goroutine ended. If the consumer fails, the
// service stops with its error.
//
// The PSP is not a readiness check: payments can be read while it is down,
// and charges then end PENDING, to be settled later.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "payment", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	svc, err := sagaservice.Open(ctx, sagaservice.Spec{
		Name: "payment", Migrations: migrations.FS, Migrate: saga.MigrateBarrier,
		Topics: checkoutv1.WithDLQ(checkoutv1.TopicPaymentCommands, checkoutv1.TopicReplies), Partitions: checkoutv1.TopicPartitions,
	}, cfg.Config, getenv, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, svc.Close()) }()

	// The PSP's breaker fails a charge fast while the PSP is failing or
	// slow, so the saga compensates at once (ReasonPSPUnavailable) instead
	// of waiting for the step's deadline.
	breakers, err := svc.Process.Breakers(ctx, cfg.BreakerRules)
	if err != nil {
		return err
	}
	provider := psp.New(cfg.PSPURL, cfg.PSPTimeout, func(next http.RoundTripper) http.RoundTripper {
		return breakers.RoundTripper("psp", svc.Process.Telemetry.Transport("psp", next))
	})
	defer provider.Close()
	payments := payment.NewService(db.NewStore(svc.DB), provider, time.Now)
	commands := kafkaapi.NewHandler(svc.DB, payments, svc.Relay, time.Now, log)
	if err := svc.Consume(checkoutv1.TopicPaymentCommands, checkoutv1.DLQTopic(checkoutv1.TopicPaymentCommands), commands.Handle); err != nil {
		return err
	}
	httpapi.Register(svc.Router, payments, log)

	return svc.Run(ctx)
}
