package checkout

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// ErrUnexpectedReply is wrapped by HandleReply's error for a reply whose
// payload does not answer the command its headers name, or which is no
// reply at all.
var ErrUnexpectedReply = errors.New("unexpected reply")

// HandleReply is the messaging.Handler of the replies topic: it decodes a
// participant's reply and hands it to the orchestrator. A message that can
// never be handled (no envelope, no correlation headers, a payload that does
// not answer the command its headers name) is a messaging.Permanent error,
// for the dead-letter topic; other errors (the database) are worth a retry.
// Duplicate and late replies change nothing.
func (c *Checkout) HandleReply(ctx context.Context, msg kafka.Message) error {
	env, err := checkoutv1.Unmarshal(msg.Value)
	if err != nil {
		return messaging.Permanent(err)
	}
	headers := make(map[string]string, len(msg.Headers))
	for _, h := range msg.Headers { // the last of a repeated header wins, as in messaging.Header
		headers[h.Key] = string(h.Value)
	}
	corr, err := saga.ParseCorrelation(headers)
	if err != nil {
		return messaging.Permanent(err)
	}
	ok, reason, err := replyOutcome(env, corr)
	if err != nil {
		return messaging.Permanent(err)
	}
	if err := c.orch.HandleReply(ctx, corr.Reply(ok, reason)); err != nil {
		if errors.Is(err, saga.ErrInvalidCorrelation) || errors.Is(err, saga.ErrUnknownDefinition) {
			return messaging.Permanent(err)
		}
		messageID, _ := messaging.Header(msg, outbox.HeaderMessageID)
		return fmt.Errorf("reply %s to %s %s of order %s: %w", messageID, corr.Op, corr.Step, corr.SagaID, err)
	}
	c.notify() // the transition may have added commands and events
	return nil
}

// answer is the operation a reply payload answers, and whether it says the
// operation succeeded.
type answer struct {
	step, op string
	ok       bool
}

// answers maps every reply payload to the operation it answers. A refusal's
// reason is in its payload.
var answers = map[string]answer{
	"StockReserved":        {step: StepReserveStock, op: saga.OpAction, ok: true},
	"StockRejected":        {step: StepReserveStock, op: saga.OpAction, ok: false},
	"StockReleased":        {step: StepReserveStock, op: saga.OpCompensate, ok: true},
	"PaymentCaptured":      {step: StepChargePayment, op: saga.OpAction, ok: true},
	"PaymentFailed":        {step: StepChargePayment, op: saga.OpAction, ok: false},
	"PaymentRefunded":      {step: StepChargePayment, op: saga.OpCompensate, ok: true},
	"ReservationCommitted": {step: StepCommitReservation, op: saga.OpAction, ok: true},
	"CommitRejected":       {step: StepCommitReservation, op: saga.OpAction, ok: false},
}

// replyOutcome checks that env is a reply answering the command corr names,
// about the same order, and returns whether it succeeded and why not.
func replyOutcome(env *checkoutv1.Envelope, corr saga.Correlation) (ok bool, reason string, err error) {
	payload := checkoutv1.PayloadMessage(env)
	name := string(payload.ProtoReflect().Descriptor().Name())
	want, known := answers[name]
	switch {
	case !known:
		return false, "", fmt.Errorf("%w: %s is not a reply", ErrUnexpectedReply, name)
	case want.step != corr.Step || want.op != corr.Op:
		return false, "", fmt.Errorf("%w: %s does not answer %s of step %s", ErrUnexpectedReply, name, corr.Op, corr.Step)
	case checkoutv1.OrderID(env) != corr.SagaID:
		return false, "", fmt.Errorf("%w: %s about order %s has saga id %s", ErrUnexpectedReply, name, checkoutv1.OrderID(env), corr.SagaID)
	}
	switch p := env.GetPayload().(type) {
	case *checkoutv1.Envelope_StockRejected:
		reason = p.StockRejected.GetReason()
	case *checkoutv1.Envelope_PaymentFailed:
		reason = p.PaymentFailed.GetReason()
	case *checkoutv1.Envelope_CommitRejected:
		reason = p.CommitRejected.GetReason()
	}
	return want.ok, reason, nil
}
