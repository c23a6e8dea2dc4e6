package outbox_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/propagation"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
)

// printer is a Publisher that prints what it is given, standing in for Kafka.
type printer struct{}

func (printer) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	for _, m := range msgs {
		fmt.Printf("%s key=%s value=%s\n", m.Topic, m.Key, m.Value)
		for _, h := range m.Headers {
			fmt.Printf("  %s: %s\n", h.Key, h.Value)
		}
	}
	return nil
}

// The message is added in the transaction of the business change and
// published by a round of the relay.
func Example() {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	db, err := database.Open(ctx, "sqlite:"+filepath.Join(dir, "order.db"), log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db, log); err != nil {
		fmt.Println(err)
		return
	}

	// The context of the request being served, inside its trace: here
	// made from the caller's traceparent header, which otelgin does in a
	// service.
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
	err = db.Transaction(func(tx *gorm.DB) error {
		// ... insert the order here, with tx ...
		return outbox.Add(ctx, tx, outbox.Message{
			ID:      "5f0c7c8e-3b1a-4f0e-9d57-2f4a8f3b9c11",
			Topic:   "inventory.commands",
			Key:     "order-42",
			Payload: []byte(`{"reserve":"MUG-BLUE"}`),
		})
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	relay, err := outbox.NewRelay(db, printer{}, outbox.RelayOptions{}, log, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := relay.RelayOnce(ctx)
	fmt.Println("relayed:", n, err)
	// Output:
	// inventory.commands key=order-42 value={"reserve":"MUG-BLUE"}
	//   message-id: 5f0c7c8e-3b1a-4f0e-9d57-2f4a8f3b9c11
	//   traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	// relayed: 1 <nil>
}

// How a service wires the outbox: migrate at start-up, relay in the
// background through a Writer with acks=all, and Notify after each commit
// that added messages so they leave at once.
func ExampleRelay_Run() {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	log := slog.Default()
	db, err := database.Open(ctx, "postgres://order@localhost:5432/orderdb", log)
	if err != nil {
		log.Error("open database", slog.Any("error", err))
		return
	}
	defer db.Close()
	if err := outbox.Migrate(ctx, db, log); err != nil {
		log.Error("migrate outbox", slog.Any("error", err))
		return
	}
	writer := messaging.NewWriter(messaging.Config{Brokers: []string{"localhost:9092"}, ClientID: "order"})
	defer writer.Close()
	relay, err := outbox.NewRelay(db, writer, outbox.RelayOptions{}, log, prometheus.NewRegistry())
	if err != nil {
		log.Error("start outbox relay", slog.Any("error", err))
		return
	}
	done := make(chan struct{})
	go func() { relay.Run(ctx); close(done) }()

	// In a request handler:
	// The context of the request being served, inside its trace: here
	// made from the caller's traceparent header, which otelgin does in a
	// service.
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	})
	err = db.Transaction(func(tx *gorm.DB) error {
		// ... the business change ...
		return outbox.Add(ctx, tx, outbox.Message{ID: uuid.NewString(), Topic: "inventory.commands", Key: "order-42"})
	})
	if err == nil {
		relay.Notify()
	}

	// At shutdown: stop the relay before closing the writer and database.
	stop()
	<-done
}
