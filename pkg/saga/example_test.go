package saga_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/saga"
)

// printSender stands in for a service's outbox: it prints each command.
type printSender struct{}

func (printSender) Send(_ context.Context, _ *gorm.DB, cmd saga.Command) error {
	fmt.Printf("send to %s: %s %s\n", cmd.Topic, cmd.Headers[saga.HeaderStep], cmd.Headers[saga.HeaderOp])
	return nil
}

// Example runs a checkout whose payment is declined: the stock reservation
// is compensated and the saga fails. In a service, the replies come from
// the Kafka consumer and Run runs in the background.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "saga-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.DiscardHandler)
	db, err := database.Open(ctx, "sqlite:"+filepath.Join(dir, "order.db"), log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := saga.MigrateOrchestrator(ctx, db, log); err != nil {
		fmt.Println(err)
		return
	}

	// to builds a step's command; a real one encodes inst.Data (the order)
	// and the message id it is given, once.
	to := func(topic string) func(context.Context, saga.Instance, string) (saga.Command, error) {
		return func(_ context.Context, inst saga.Instance, _ string) (saga.Command, error) {
			return saga.Command{Topic: topic, Payload: inst.Data}, nil
		}
	}
	checkout := saga.Definition{Name: "checkout", Steps: []saga.Step{
		{Name: "reserve-stock", Timeout: 30 * time.Second, Action: to("inventory.commands"), Compensate: to("inventory.commands")},
		{Name: "charge-payment", Timeout: time.Minute, Action: to("payment.commands"), Compensate: to("payment.commands")},
	}}
	hooks := saga.Hooks{
		OnFailed: func(_ context.Context, tx *gorm.DB, inst saga.Instance, reason string) error {
			fmt.Printf("cancel order %s: %s\n", inst.ID, reason) // with tx: UPDATE orders ...
			return nil
		},
	}
	o, err := saga.NewOrchestrator(db, printSender{}, []saga.Definition{checkout}, hooks, saga.Options{}, log, nil)
	if err != nil {
		fmt.Println(err)
		return
	}

	// The order and its saga are created in one transaction.
	err = db.Transaction(func(tx *gorm.DB) error {
		// tx.Create(&order) ...
		return o.Start(ctx, tx, "checkout", "order-1", []byte(`{"total_minor":1990,"currency":"EUR"}`))
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range []saga.Reply{
		{SagaID: "order-1", Step: "reserve-stock", Op: saga.OpAction, OK: true},
		{SagaID: "order-1", Step: "charge-payment", Op: saga.OpAction, OK: false, Reason: "card declined"},
		{SagaID: "order-1", Step: "reserve-stock", Op: saga.OpCompensate, OK: true},
	} {
		if err := o.HandleReply(ctx, r); err != nil {
			fmt.Println(err)
			return
		}
	}
	inst, err := o.Instance(ctx, "order-1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(inst.Status)
	// Output:
	// send to inventory.commands: reserve-stock action
	// send to payment.commands: charge-payment action
	// send to inventory.commands: reserve-stock compensate
	// cancel order order-1: charge-payment: card declined
	// FAILED
}

// ExampleBarrier is a participant's command handler: the barrier and the
// business effect share one transaction. Here a compensation overtakes its
// action, which is then refused.
func ExampleBarrier() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "saga-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	log := slog.New(slog.DiscardHandler)
	db, err := database.Open(ctx, "sqlite:"+filepath.Join(dir, "inventory.db"), log)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()
	if err := saga.MigrateBarrier(ctx, db, log); err != nil {
		fmt.Println(err)
		return
	}

	handle := func(headers map[string]string) error {
		c, err := saga.ParseCorrelation(headers)
		if err != nil {
			return err // poison: dead-letter it
		}
		return db.Transaction(func(tx *gorm.DB) error {
			out, err := saga.Barrier(ctx, tx, c.SagaID, c.Step, c.Op)
			if err != nil {
				return err
			}
			fmt.Printf("%s: %s\n", c.Op, out)
			if out == saga.Proceed {
				// Reserve or release stock with tx, then write the reply to
				// the outbox with tx.
				return nil
			}
			// No effect; write c.Reply(true, "") to the outbox with tx.
			return nil
		})
	}
	for _, op := range []string{saga.OpCompensate, saga.OpCompensate, saga.OpAction} {
		c := saga.Correlation{SagaID: "order-1", Step: "reserve-stock", Op: op}
		if err := handle(c.Headers()); err != nil {
			fmt.Println(err)
			return
		}
	}
	// Output:
	// compensate: null compensation
	// compensate: duplicate
	// action: refused
}
