package checkoutv1_test

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// A participant's reply: the envelope copies the saga's ids from the command
// it answers, and the topic and key come from the payload.
func ExampleMarshal() {
	publish := func(topic, key string, value []byte) { // stands in for a Kafka writer
		fmt.Printf("publish to %s with key %s\n", topic, key)
	}
	command := &checkoutv1.Envelope{MessageId: "msg-1", SagaId: "saga-1", Step: "reserve_stock", CorrelationId: "req-1"}
	reply := &checkoutv1.Envelope{
		MessageId:     "msg-2",
		SagaId:        command.GetSagaId(),
		Step:          command.GetStep(),
		CorrelationId: command.GetCorrelationId(),
		CausationId:   command.GetMessageId(),
		OccurredAt:    timestamppb.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)),
		Payload: &checkoutv1.Envelope_StockRejected{StockRejected: &checkoutv1.StockRejected{
			OrderId: "ord-1", Reason: "insufficient stock: 2 requested, 1 available", Sku: "sku-1",
		}},
	}
	value, err := checkoutv1.Marshal(reply)
	if err != nil {
		fmt.Println(err)
		return
	}
	topic, _ := checkoutv1.TopicOf(reply)
	publish(topic, checkoutv1.OrderID(reply), value)

	reply.MessageId = ""
	_, err = checkoutv1.Marshal(reply)
	fmt.Println(err)
	// Output:
	// publish to checkout.replies with key ord-1
	// marshal envelope: invalid envelope: StockRejected without message_id
}

// A consumer: Unmarshal, then dispatch on the payload's type. An error means
// the message can never be handled: dead-letter it.
func ExampleUnmarshal() {
	handle := func(value []byte) {
		env, err := checkoutv1.Unmarshal(value)
		if errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
			fmt.Printf("to %s: %v\n", checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands), err)
			return
		}
		switch p := env.GetPayload().(type) {
		case *checkoutv1.Envelope_ReserveStock:
			fmt.Printf("reserve %d lines for %s (saga %s, step %s)\n",
				len(p.ReserveStock.GetLines()), p.ReserveStock.GetOrderId(), env.GetSagaId(), env.GetStep())
		case *checkoutv1.Envelope_ReleaseStock:
			fmt.Printf("release the stock of %s\n", p.ReleaseStock.GetOrderId())
		default:
			fmt.Printf("to %s: %s is not an inventory command\n",
				checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands), checkoutv1.PayloadMessage(env).ProtoReflect().Descriptor().Name())
		}
	}

	value, _ := checkoutv1.Marshal(&checkoutv1.Envelope{
		MessageId: "msg-1", SagaId: "saga-1", Step: "reserve_stock", CorrelationId: "req-1",
		OccurredAt: timestamppb.New(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)),
		Payload: &checkoutv1.Envelope_ReserveStock{ReserveStock: &checkoutv1.ReserveStock{
			OrderId: "ord-1", Lines: []*checkoutv1.OrderLine{{Sku: "sku-1", Quantity: 2}},
		}},
	})
	handle(value)
	handle(nil) // an empty Kafka value
	// Output:
	// reserve 1 lines for ord-1 (saga saga-1, step reserve_stock)
	// to checkout.inventory.commands.dlq: unmarshal envelope: invalid envelope: no payload; also without message_id, correlation_id, occurred_at
}
