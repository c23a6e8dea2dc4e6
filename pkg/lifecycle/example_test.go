package lifecycle_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/microshop/microshop/pkg/lifecycle"
)

// A service runs its outbox relay and its Kafka consumer around its HTTP
// server. On SIGTERM (here: cancel) HTTP drains first, then the consumer
// finishes the message in hand, then the relay publishes what the consumer's
// handlers wrote; the writer and the database are closed after Run returns.
func ExampleRun() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	relay := func(ctx context.Context) {
		<-ctx.Done()
		fmt.Println("outbox relay stopped")
	}
	consume := func(ctx context.Context) error {
		<-ctx.Done()
		fmt.Println("consumer stopped")
		return nil
	}
	serve := func(ctx context.Context) error {
		cancel() // SIGTERM arrives
		<-ctx.Done()
		fmt.Println("http server drained")
		return nil
	}

	err := lifecycle.Run(ctx, slog.New(slog.DiscardHandler), serve,
		lifecycle.Task{Name: "outbox relay", Run: lifecycle.NoError(relay)},
		lifecycle.Task{Name: "consumer", Run: consume},
	)
	fmt.Println("run returned", err)
	// Output:
	// http server drained
	// consumer stopped
	// outbox relay stopped
	// run returned <nil>
}
