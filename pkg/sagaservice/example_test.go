package sagaservice_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/sagaservice"
)

// A participant's run: its shared parts, its consumer and its API, then
// Run until SIGINT. A real service's Spec names its migrations and the
// checkout topics (checkoutv1.WithDLQ), and its handler passes the barrier
// (saga.Participant).
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	env := config.New(os.Getenv, "SHIPPING_")
	cfg := sagaservice.ReadConfig(env, "shipping", "127.0.0.1:8084")
	if err := env.Err(); err != nil {
		slog.Error("configuration", slog.Any("error", err))
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	svc, err := sagaservice.Open(ctx, sagaservice.Spec{
		Name: "shipping", Migrations: schema, Migrate: saga.MigrateBarrier,
		Topics: []string{"shipping.commands", "shipping.commands.dlq"}, Partitions: 12,
	}, cfg, os.Getenv, log)
	if err != nil {
		log.Error("open", slog.Any("error", err))
		return
	}
	handle := func(ctx context.Context, msg kafka.Message) error { return nil } // the commands' handler
	err = svc.Consume("shipping.commands", "shipping.commands.dlq", handle)
	if err == nil {
		err = svc.Run(ctx) // the API was registered on svc.Router before
	}
	if err := errors.Join(err, svc.Close()); err != nil {
		log.Error("shipping", slog.Any("error", err))
	}
}
