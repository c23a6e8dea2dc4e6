// Package checkoutv1 is the contract of the checkout saga's Kafka messages:
// the commands the order service sends to inventory and payment, their
// replies, the order service's domain events, and the Envelope every one of
// them travels in.
//
// The message types are generated from the .proto files next to this one
// (make proto; never edit a .pb.go file). This file is the hand-written part:
// the topic names and their partition count, and Marshal and Unmarshal,
// which refuse an envelope a consumer could not act on, so every service
// checks the same rules.
//
// Building a message:
//
//	env := &checkoutv1.Envelope{
//		MessageId:     uuid.NewString(),
//		SagaId:        sagaID,
//		Step:          checkoutv1.StepReserveStock,
//		CorrelationId: requestID,
//		OccurredAt:    timestamppb.New(now),
//		Payload: &checkoutv1.Envelope_ReserveStock{ReserveStock: &checkoutv1.ReserveStock{
//			OrderId: orderID,
//			Lines:   []*checkoutv1.OrderLine{{Sku: "sku-1", Quantity: 2}},
//		}},
//	}
//	value, err := checkoutv1.Marshal(env) // Kafka key: checkoutv1.OrderID(env), topic: checkoutv1.TopicOf(env)
//
// Consuming one: Unmarshal, then a type switch on env.GetPayload(). An error
// from Unmarshal matches ErrInvalidEnvelope: the message will never become
// valid, so it belongs on the dead-letter topic (DLQTopic), not in a retry loop.
//
// The functions keep no state and are safe for concurrent use; a generated
// message is not, like any Go value, while one goroutine modifies it.
package checkoutv1

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Kafka topics of the checkout. Commands go to the participant that executes
// them, every participant's replies go to the one topic the orchestrator
// reads, and order events to whoever follows orders. Every message's key is
// its payload's order id (OrderID).
const (
	// TopicInventoryCommands carries ReserveStock, CommitReservation and
	// ReleaseStock, read by inventory.
	TopicInventoryCommands = "checkout.inventory.commands"
	// TopicPaymentCommands carries ChargePayment and RefundPayment, read by
	// payment.
	TopicPaymentCommands = "checkout.payment.commands"
	// TopicReplies carries the participants' replies, read by the order
	// service's saga orchestrator.
	TopicReplies = "checkout.replies"
	// TopicOrderEvents carries OrderPlaced, OrderConfirmed and OrderCancelled.
	TopicOrderEvents = "order.events"
	// DLQSuffix names a topic's dead-letter topic: a consumer of topic T moves
	// a message it can never process to T + DLQSuffix, and commits it.
	DLQSuffix = ".dlq"
)

// Topics returns the checkout's topics (not their dead-letter topics), for
// creating them explicitly at start-up. The slice is new on every call.
func Topics() []string {
	return []string{TopicInventoryCommands, TopicPaymentCommands, TopicReplies, TopicOrderEvents}
}

// TopicPartitions is the partition count the services create the checkout's
// topics and their dead-letter topics with. A consumer group hands each
// partition to one member, which handles its messages one at a time, in
// order (the order of a key's messages is what partitions keep), so the
// count bounds how many messages of a topic the group handles in parallel,
// and it is the unit in which a group of several replicas splits the work:
// 12 divides evenly among 1, 2, 3, 4 or 6 replicas. It applies to topics
// still to be created; Kafka can only add partitions to a topic, and doing so
// moves keys between partitions, which breaks the order of messages in flight.
const TopicPartitions = 12

// DLQTopic returns the dead-letter topic of topic.
func DLQTopic(topic string) string { return topic + DLQSuffix }

// WithDLQ returns topics, each followed by its dead-letter topic: what a
// service that produces or consumes them creates at start-up. The slice is
// new on every call.
func WithDLQ(topics ...string) []string {
	all := make([]string, 0, 2*len(topics))
	for _, t := range topics {
		all = append(all, t, DLQTopic(t))
	}
	return all
}

// Errors of Validate, Marshal and Unmarshal.
var (
	// ErrInvalidEnvelope is matched by every error of Validate, Marshal and
	// Unmarshal: bytes that are not an envelope, a missing id or timestamp, no
	// payload.
	ErrInvalidEnvelope = errors.New("invalid envelope")
	// ErrUnknownPayload is matched, with ErrInvalidEnvelope, when an envelope
	// has no payload this program knows but unknown fields: most likely a
	// payload added to the schema after this program was built. A consumer
	// may skip such a message instead of dead-lettering it.
	ErrUnknownPayload = errors.New("payload of a type this build does not know")
)

// Validate reports why e could not be acted on, or nil. It requires
// message_id, correlation_id, a valid occurred_at and a payload with an
// order_id; on commands and replies also saga_id and step, which the
// participant barrier is keyed by. causation_id is optional (empty on the
// first message of a conversation). It does not check the payload's business
// rules (quantities, amounts): that is the receiving service's job.
func Validate(e *Envelope) error {
	if e == nil {
		return fmt.Errorf("%w: nil *Envelope", ErrInvalidEnvelope)
	}
	var missing []string
	if e.GetMessageId() == "" {
		missing = append(missing, "message_id")
	}
	if e.GetCorrelationId() == "" {
		missing = append(missing, "correlation_id")
	}
	if e.GetOccurredAt() == nil {
		missing = append(missing, "occurred_at")
	}
	topic, err := TopicOf(e)
	if err != nil {
		if len(missing) > 0 {
			return fmt.Errorf("%w; also without %s", err, strings.Join(missing, ", "))
		}
		return err
	}
	if topic != TopicOrderEvents {
		if e.GetSagaId() == "" {
			missing = append(missing, "saga_id")
		}
		if e.GetStep() == "" {
			missing = append(missing, "step")
		}
	}
	if OrderID(e) == "" {
		missing = append(missing, "payload order_id")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s without %s", ErrInvalidEnvelope, payloadName(e), strings.Join(missing, ", "))
	}
	if err := e.GetOccurredAt().CheckValid(); err != nil {
		return fmt.Errorf("%w: occurred_at: %w", ErrInvalidEnvelope, err)
	}
	return nil
}

// Marshal validates e and returns its wire form, the value of a Kafka message.
// Refusing to send an invalid envelope keeps the error with the producer,
// where the bug is, rather than on a consumer's dead-letter topic.
func Marshal(e *Envelope) ([]byte, error) {
	if err := Validate(e); err != nil {
		return nil, fmt.Errorf("marshal envelope: %w", err)
	}
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("marshal envelope: %w: %w", ErrInvalidEnvelope, err)
	}
	return b, nil
}

// Unmarshal parses the value of a Kafka message and validates it (Validate).
// data comes from the network: any bytes are safe to pass. Fields unknown to
// this build are kept, so a newer producer's additions survive a re-Marshal.
// Every error matches ErrInvalidEnvelope.
func Unmarshal(data []byte) (*Envelope, error) {
	var e Envelope
	if err := proto.Unmarshal(data, &e); err != nil {
		return nil, fmt.Errorf("unmarshal envelope: %w: %w", ErrInvalidEnvelope, err)
	}
	if err := Validate(&e); err != nil {
		return nil, fmt.Errorf("unmarshal envelope: %w", err)
	}
	return &e, nil
}

// TopicOf returns the topic e's payload is published on. The error matches
// ErrInvalidEnvelope (and ErrUnknownPayload, see there) when e has no payload.
func TopicOf(e *Envelope) (string, error) {
	switch p := e.GetPayload().(type) {
	case *Envelope_ReserveStock, *Envelope_CommitReservation, *Envelope_ReleaseStock:
		return TopicInventoryCommands, nil
	case *Envelope_ChargePayment, *Envelope_RefundPayment:
		return TopicPaymentCommands, nil
	case *Envelope_StockReserved, *Envelope_StockRejected, *Envelope_ReservationCommitted,
		*Envelope_StockReleased, *Envelope_PaymentCaptured, *Envelope_PaymentFailed,
		*Envelope_PaymentRefunded, *Envelope_CommitRejected:
		return TopicReplies, nil
	case *Envelope_OrderPlaced, *Envelope_OrderConfirmed, *Envelope_OrderCancelled:
		return TopicOrderEvents, nil
	case nil:
		if len(e.ProtoReflect().GetUnknown()) > 0 {
			return "", fmt.Errorf("%w: %w (it has unknown fields: built from a newer schema?)", ErrInvalidEnvelope, ErrUnknownPayload)
		}
		return "", fmt.Errorf("%w: no payload", ErrInvalidEnvelope)
	default:
		// A oneof case added to envelope.proto but not to this switch;
		// TestTopicOfEveryPayload catches it before it ships.
		return "", fmt.Errorf("%w: no topic for payload %T", ErrInvalidEnvelope, p)
	}
}

// PayloadMessage returns the message inside e's payload oneof, e.g. a
// *ReserveStock, or nil when e has none: for code that handles every payload
// alike (logging its name, dead-lettering). Dispatch with a type switch on
// e.GetPayload() instead.
func PayloadMessage(e *Envelope) proto.Message {
	if e == nil {
		return nil
	}
	m := e.ProtoReflect()
	field := m.WhichOneof(m.Descriptor().Oneofs().ByName("payload"))
	if field == nil {
		return nil
	}
	return m.Get(field).Message().Interface()
}

// OrderID returns the order id of e's payload, the Kafka key of the message,
// or "" when e has no payload. Every payload message has an order_id.
func OrderID(e *Envelope) string {
	p, ok := PayloadMessage(e).(interface{ GetOrderId() string })
	if !ok {
		return ""
	}
	return p.GetOrderId()
}

// payloadName is the payload's message name for error messages, e.g.
// "ReserveStock".
func payloadName(e *Envelope) protoreflect.Name {
	if p := PayloadMessage(e); p != nil {
		return p.ProtoReflect().Descriptor().Name()
	}
	return "envelope"
}
