package checkout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

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
	messageID, _ := messaging.Header(msg, outbox.HeaderMessageID)
	if corr.Step == StepCommitReservation {
		// No step waits for it: CommitReservation is sent once the saga completed.
		c.log.InfoContext(ctx, "reservation committed", slog.String("order_id", corr.SagaID), slog.String("message_id", messageID))
		return nil
	}
	if err := c.orch.HandleReply(ctx, corr.Reply(ok, reason)); err != nil {
		if errors.Is(err, saga.ErrInvalidCorrelation) || errors.Is(err, saga.ErrUnknownDefinition) {
			return messaging.Permanent(err)
		}
		return fmt.Errorf("reply %s to %s %s of order %s: %w", messageID, corr.Op, corr.Step, corr.SagaID, err)
	}
	c.notify() // the transition may have added commands and events
	return nil
}

// answer is what a reply payload means when it answers one operation.
type answer struct {
	step, op string
	ok       bool
	// reason of a refusal whose payload carries none.
	reason string
}

// ReasonReservationCommitted is the reason of the refused ReleaseStock that
// inventory answers with ReservationCommitted.
const ReasonReservationCommitted = "reservation committed: its stock is sold and cannot be released"

// answers maps every reply payload to the operations it may answer, and
// what it means there.
//
// ReservationCommitted answers CommitReservation, and also a ReleaseStock
// that found the reservation committed: a sale cannot be undone, so that
// compensation is refused. The orchestrator then keeps the saga
// COMPENSATING and re-sends ReleaseStock with backoff, visible in its logs
// and metrics, instead of cancelling an order whose stock is sold. It cannot
// happen in this saga (CommitReservation is sent only once it completed):
// if it does, someone must look.
var answers = map[string][]answer{
	"StockReserved":   {{step: StepReserveStock, op: saga.OpAction, ok: true}},
	"StockRejected":   {{step: StepReserveStock, op: saga.OpAction, ok: false}},
	"StockReleased":   {{step: StepReserveStock, op: saga.OpCompensate, ok: true}},
	"PaymentCaptured": {{step: StepChargePayment, op: saga.OpAction, ok: true}},
	"PaymentFailed":   {{step: StepChargePayment, op: saga.OpAction, ok: false}},
	"PaymentRefunded": {{step: StepChargePayment, op: saga.OpCompensate, ok: true}},
	"ReservationCommitted": {
		{step: StepCommitReservation, op: saga.OpAction, ok: true},
		{step: StepReserveStock, op: saga.OpCompensate, ok: false, reason: ReasonReservationCommitted},
	},
}

// replyOutcome checks that env is a reply answering the command corr names,
// about the same order, and returns whether it succeeded and why not.
func replyOutcome(env *checkoutv1.Envelope, corr saga.Correlation) (ok bool, reason string, err error) {
	payload := checkoutv1.PayloadMessage(env)
	name := string(payload.ProtoReflect().Descriptor().Name())
	meanings, known := answers[name]
	i := slices.IndexFunc(meanings, func(a answer) bool { return a.step == corr.Step && a.op == corr.Op })
	switch {
	case !known:
		return false, "", fmt.Errorf("%w: %s is not a reply", ErrUnexpectedReply, name)
	case i < 0:
		return false, "", fmt.Errorf("%w: %s does not answer %s of step %s", ErrUnexpectedReply, name, corr.Op, corr.Step)
	case checkoutv1.OrderID(env) != corr.SagaID:
		return false, "", fmt.Errorf("%w: %s about order %s has saga id %s", ErrUnexpectedReply, name, checkoutv1.OrderID(env), corr.SagaID)
	}
	want := meanings[i]
	reason = want.reason
	switch p := env.GetPayload().(type) {
	case *checkoutv1.Envelope_StockRejected:
		reason = p.StockRejected.GetReason()
	case *checkoutv1.Envelope_PaymentFailed:
		reason = p.PaymentFailed.GetReason()
	}
	return want.ok, reason, nil
}
