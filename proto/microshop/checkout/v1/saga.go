package checkoutv1

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// The checkout saga as the services agree on it: the saga's name, its steps
// (in the saga-step header, the envelope's step field and the participants'
// barrier rows), what each command and reply is in the saga, and the
// payment provider's idempotency keys. Every service, the chaos harness and
// the benchmark read them from here; nobody spells them again.
const (
	// Saga is the name of the checkout saga's definition in the order
	// service's orchestrator.
	Saga = "checkout"

	// StepReserveStock holds stock for the order's lines: ReserveStock,
	// compensated by ReleaseStock.
	StepReserveStock = "reserve-stock"
	// StepChargePayment charges the order's total: ChargePayment,
	// compensated by RefundPayment.
	StepChargePayment = "charge-payment"
	// StepCommitReservation sells the reserved stock: CommitReservation,
	// the last step. It has no compensation of its own: ReleaseStock, the
	// compensation of StepReserveStock, also undoes a commit.
	StepCommitReservation = "commit-reservation"
)

// ReasonRefused is the reason a participant gives when it refuses an action
// that arrived after its compensation (the barrier's anti-hanging): in
// StockRejected, CommitRejected or PaymentFailed.
const ReasonRefused = "refused: compensated before it arrived"

// SpanAttributeOrderID is the span attribute holding the id of the order a
// checkout created. The order service sets it on the span of the request
// that created the order (POST /v1/orders answered 202, not a replay): one
// checkout is one trace, and the trace of an order is found by it (the
// gateway's order page, Jaeger's search by tag).
const SpanAttributeOrderID = "order.id"

// Steps returns the checkout saga's steps in the order they run. The slice
// is new on every call.
func Steps() []string {
	return []string{StepReserveStock, StepChargePayment, StepCommitReservation}
}

// Role is what a command does in the checkout saga, or what a reply answers.
type Role struct {
	// Step is the step the command belongs to (one of Steps).
	Step string
	// Compensation is true for a command that undoes its step (ReleaseStock,
	// RefundPayment) and for the replies to one; false for a step's action.
	Compensation bool
	// Reply is true for a participant's reply, false for a command.
	Reply bool
	// OK, for a reply, says the operation succeeded; a refusal (OK false)
	// carries its reason in the payload (ReasonOf).
	OK bool
}

// RoleOf returns the role of e's payload in the saga, and false for an order
// event, an envelope without a payload, or a payload of a newer schema.
func RoleOf(e *Envelope) (Role, bool) {
	switch e.GetPayload().(type) {
	case *Envelope_ReserveStock:
		return Role{Step: StepReserveStock}, true
	case *Envelope_ReleaseStock:
		return Role{Step: StepReserveStock, Compensation: true}, true
	case *Envelope_ChargePayment:
		return Role{Step: StepChargePayment}, true
	case *Envelope_RefundPayment:
		return Role{Step: StepChargePayment, Compensation: true}, true
	case *Envelope_CommitReservation:
		return Role{Step: StepCommitReservation}, true
	case *Envelope_StockReserved:
		return Role{Step: StepReserveStock, Reply: true, OK: true}, true
	case *Envelope_StockRejected:
		return Role{Step: StepReserveStock, Reply: true}, true
	case *Envelope_StockReleased:
		return Role{Step: StepReserveStock, Compensation: true, Reply: true, OK: true}, true
	case *Envelope_PaymentCaptured:
		return Role{Step: StepChargePayment, Reply: true, OK: true}, true
	case *Envelope_PaymentFailed:
		return Role{Step: StepChargePayment, Reply: true}, true
	case *Envelope_PaymentRefunded:
		return Role{Step: StepChargePayment, Compensation: true, Reply: true, OK: true}, true
	case *Envelope_ReservationCommitted:
		return Role{Step: StepCommitReservation, Reply: true, OK: true}, true
	case *Envelope_CommitRejected:
		return Role{Step: StepCommitReservation, Reply: true}, true
	}
	return Role{}, false
}

// ReasonOf returns the reason a refusing reply gives (StockRejected,
// PaymentFailed, CommitRejected), or "" for any other envelope.
func ReasonOf(e *Envelope) string {
	switch p := e.GetPayload().(type) {
	case *Envelope_StockRejected:
		return p.StockRejected.GetReason()
	case *Envelope_PaymentFailed:
		return p.PaymentFailed.GetReason()
	case *Envelope_CommitRejected:
		return p.CommitRejected.GetReason()
	}
	return ""
}

// Suffixes of the payment provider's idempotency keys (see ChargeKey).
const (
	chargeSuffix = ":charge"
	refundSuffix = ":refund"
)

// ChargeKey returns the payment provider's idempotency key of an order's
// charge, "<order id>:charge": ChargePayment carries it, and payment finds
// the charge to refund by it, so that a redelivered or re-sent command
// never charges twice.
func ChargeKey(orderID string) string { return orderID + chargeSuffix }

// RefundKey returns the payment provider's idempotency key of an order's
// refund, "<order id>:refund", which RefundPayment carries.
func RefundKey(orderID string) string { return orderID + refundSuffix }

// KeyKind says which of an order's payment operations a key names.
type KeyKind int

// Kinds of payment provider idempotency keys.
const (
	// KeyUnknown: the key is not one ChargeKey or RefundKey makes.
	KeyUnknown KeyKind = iota
	// KeyCharge: ChargeKey's.
	KeyCharge
	// KeyRefund: RefundKey's.
	KeyRefund
)

// ParseKey returns the order id and kind of a payment provider idempotency
// key, or KeyUnknown when neither ChargeKey nor RefundKey could have made
// it. The chaos harness uses it to account for every record at the provider.
func ParseKey(key string) (orderID string, kind KeyKind) {
	if id, ok := strings.CutSuffix(key, chargeSuffix); ok && id != "" {
		return id, KeyCharge
	}
	if id, ok := strings.CutSuffix(key, refundSuffix); ok && id != "" {
		return id, KeyRefund
	}
	return "", KeyUnknown
}

// UnmarshalCommand parses a command consumed from topic, a participant's
// command topic: Unmarshal, then a refusal of any payload that is not a
// command published on topic. It returns the envelope and the command's
// role, for the participant's barrier (saga.ParseDelivery). Every error
// matches ErrInvalidEnvelope.
func UnmarshalCommand(data []byte, topic string) (*Envelope, Role, error) {
	e, err := Unmarshal(data)
	if err != nil {
		return nil, Role{}, err
	}
	role, ok := RoleOf(e)
	if t, _ := TopicOf(e); !ok || role.Reply || t != topic {
		return nil, Role{}, fmt.Errorf("%w: %s is not a command of %s", ErrInvalidEnvelope, PayloadName(e), topic)
	}
	return e, role, nil
}

// ReplyEncoder returns what encodes reply, a participant's answer whose
// payload is set, to a command of saga sagaID's step whose message id was
// causationID, once the reply's message id is known: it completes the
// envelope (the correlation id is the saga id, the order id) with that id
// and at, and marshals it. Its type fits saga.EncodeReply.
func ReplyEncoder(reply *Envelope, sagaID, step, causationID string, at time.Time) func(messageID string) ([]byte, error) {
	return func(messageID string) ([]byte, error) {
		reply.MessageId, reply.SagaId, reply.Step = messageID, sagaID, step
		reply.CorrelationId, reply.CausationId = sagaID, causationID
		reply.OccurredAt = timestamppb.New(at)
		return Marshal(reply)
	}
}

// PayloadName returns the name of e's payload message, e.g. "ReserveStock",
// for logs and errors, or "envelope" when e has none.
func PayloadName(e *Envelope) string { return string(payloadName(e)) }
