package messaging_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/messaging"
)

// A participant consumes its command topic: a payload that does not decode
// is dead-lettered at once, a failing database call is retried, and SIGINT
// lets the command in hand finish and be committed before the process exits.
func ExampleConsumer() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	kc := messaging.Config{Brokers: []string{"127.0.0.1:9092"}, ClientID: "inventory"}

	if err := messaging.EnsureTopics(ctx, kc, 3, "inventory.commands", "inventory.commands.dlq"); err != nil {
		log.Error("create topics", slog.Any("error", err))
		return
	}
	handle := func(ctx context.Context, msg kafka.Message) error {
		id, _ := messaging.Header(msg, "message-id")
		var cmd struct{ OrderID string }
		if err := json.Unmarshal(msg.Value, &cmd); err != nil {
			return messaging.Permanent(fmt.Errorf("decode command %s: %w", id, err))
		}
		// Reserve stock for cmd.OrderID in one transaction with the saga
		// barrier row; return its error, which is retried.
		return nil
	}
	c, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          kc,
		GroupID:         "inventory",
		Topics:          []string{"inventory.commands"},
		DeadLetterTopic: "inventory.commands.dlq",
	}, handle, log, prometheus.NewRegistry())
	if err != nil {
		log.Error("create consumer", slog.Any("error", err))
		return
	}
	defer c.Close()
	if err := c.Run(ctx); err != nil {
		log.Error("consume", slog.Any("error", err))
	}
}
