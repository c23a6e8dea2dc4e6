// Package kafkaapi is the payment service's part in the checkout saga: it
// handles ChargePayment and RefundPayment from Kafka
// (checkoutv1.TopicPaymentCommands) and answers each on
// checkoutv1.TopicReplies through the outbox (PaymentCaptured,
// PaymentFailed, PaymentRefunded).
//
// Every command passes the saga barrier first (saga.Participant.Pass). Unlike a
// participant whose effect is a database write, payment's effect is a call to
// the payment provider (PSP), which cannot join a database transaction. So a
// command is handled in up to three parts:
//
//  1. a transaction that passes the barrier (and, when the barrier already
//     decides the answer, writes the reply to the outbox);
//  2. the PSP work, through the payment use cases, outside any transaction;
//  3. a transaction that writes the reply to the outbox.
//
// This is safe because every PSP call is idempotent by key (the charge key
// checkoutv1.ChargeKey, the command's refund key): a command redelivered after
// a crash between the parts finds its barrier row (Duplicate) and does the
// PSP work again, which resumes the payment or refund it finds instead of
// making another. The barrier itself then only has to do what a key cannot:
// keep a charge that arrives after its compensation from charging (Refused),
// and let a compensation that arrives before its charge succeed without
// effect (NullCompensation). Both need the barrier row of RefundPayment
// committed BEFORE the refund is settled, which part 1 does.
package kafkaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/payment/internal/payment"
)

// Payments are the use cases the handler calls (a *payment.Service).
type Payments interface {
	Charge(ctx context.Context, req payment.ChargeRequest) (payment.Payment, error)
	Status(ctx context.Context, idempotencyKey string) (payment.Payment, error)
	Refund(ctx context.Context, req payment.RefundRequest) (payment.Refund, error)
}

// Notifier is told after a commit that added messages to the outbox (an
// *outbox.Relay).
type Notifier interface {
	Notify()
}

// Handler handles the payment commands of the checkout saga. Create it with
// NewHandler and give its Handle to a messaging.Consumer of
// checkoutv1.TopicPaymentCommands. It is safe for concurrent use.
type Handler struct {
	participant *saga.Participant
	payments    Payments
	now         func() time.Time
	log         *slog.Logger
}

// NewHandler returns a Handler keeping its barrier rows and outbox in db
// (migrated with saga.MigrateBarrier and outbox.Migrate), charging and
// refunding through payments, and notifying relay after each commit that
// wrote a reply. now is the clock of the replies' occurred_at.
func NewHandler(db *database.DB, payments Payments, relay Notifier, now func() time.Time, log *slog.Logger) *Handler {
	return &Handler{
		participant: saga.NewParticipant(db, checkoutv1.TopicReplies, relay.Notify),
		payments:    payments,
		now:         now,
		log:         log,
	}
}

// Handle handles one message of checkoutv1.TopicPaymentCommands; it is a
// messaging.Handler. A message that can never be handled (undecodable, no or
// inconsistent correlation) gives a messaging.Permanent error; a transient
// failure (database, PSP without an answer) an error to retry.
func (h *Handler) Handle(ctx context.Context, msg kafka.Message) error {
	// The saga id IS the order id (parseCommand checks it): the barrier is
	// keyed by the one, the charge key derived from the other, and
	// anti-hanging needs both to name the same saga.
	cmd, d, err := parseCommand(msg)
	if err != nil {
		return messaging.Permanent(err)
	}
	switch p := cmd.GetPayload().(type) {
	case *checkoutv1.Envelope_ChargePayment:
		return h.charge(ctx, d, p.ChargePayment)
	case *checkoutv1.Envelope_RefundPayment:
		return h.refund(ctx, d, p.RefundPayment)
	}
	return fmt.Errorf("no use case for %s", checkoutv1.PayloadName(cmd)) // parseCommand let it through: a bug
}

// parseCommand reads a payment command and its delivery from msg, or says
// why it never can.
func parseCommand(msg kafka.Message) (*checkoutv1.Envelope, saga.Delivery, error) {
	cmd, role, err := checkoutv1.UnmarshalCommand(msg.Value, checkoutv1.TopicPaymentCommands)
	if err != nil {
		return nil, saga.Delivery{}, err
	}
	d, err := saga.ParseDelivery(messaging.Headers(msg), cmd.GetMessageId(), checkoutv1.OrderID(cmd), role.Step, role.Compensation)
	if err != nil {
		return nil, saga.Delivery{}, fmt.Errorf("%s: %w", checkoutv1.PayloadName(cmd), err)
	}
	return cmd, d, nil
}

// reply returns the encoder of env, payment's answer to d.
func (h *Handler) reply(d saga.Delivery, env *checkoutv1.Envelope) saga.EncodeReply {
	return checkoutv1.ReplyEncoder(env, d.SagaID, d.Step, d.MessageID, h.now())
}

// charge handles ChargePayment.
func (h *Handler) charge(ctx context.Context, d saga.Delivery, c *checkoutv1.ChargePayment) error {
	orderID := d.SagaID
	// outcome is the barrier's, made Refused for a compensated Duplicate.
	var outcome saga.Outcome
	_, err := h.participant.Pass(ctx, d, func(tx *gorm.DB, passed saga.Outcome) (saga.EncodeReply, error) {
		outcome = passed
		if outcome == saga.Duplicate {
			// The barrier says Refused only to an action arriving after
			// its compensation. A charge whose first delivery passed the
			// barrier but crashed before reaching the PSP is a Duplicate
			// even once the compensation has settled "nothing charged":
			// it must not charge now either.
			compensated, err := saga.Compensated(ctx, tx, d.SagaID, d.Step)
			if err != nil {
				return nil, err
			}
			if compensated {
				outcome = saga.Refused
			}
		}
		if outcome != saga.Refused {
			return nil, nil
		}
		return h.reply(d, failed(orderID, checkoutv1.ReasonRefused)), nil
	})
	if err != nil {
		return fmt.Errorf("charge order %s: %w", orderID, err)
	}
	log := h.log.With(slog.String("order_id", orderID), slog.String("barrier", outcome.String()))
	logBarrier(ctx, log, d.Correlation, outcome)
	if outcome == saga.Refused {
		log.Info("charge refused: its compensation came first")
		return nil
	}

	// Proceed or Duplicate: charge, or find the charge of an earlier
	// delivery by its key.
	p, err := h.payments.Charge(ctx, payment.ChargeRequest{
		OrderID:        orderID,
		Amount:         money.Amount{Minor: c.GetAmount().GetMinorUnits(), Currency: c.GetAmount().GetCurrency()},
		CardNumber:     c.GetCardNumber(),
		IdempotencyKey: c.GetIdempotencyKey(),
	})
	var answer *checkoutv1.Envelope
	switch {
	case errors.Is(err, payment.ErrPSPAmbiguous):
		// No reply: the step's deadline expires and RefundPayment settles
		// the charge by its key.
		log.Warn("charge outcome unknown; left to the compensation", slog.String("payment_id", p.ID), slog.Any("error", err))
		return nil
	case errors.Is(err, payment.ErrInvalid):
		// Nothing was sent to the PSP, so nothing was charged: a certain failure.
		answer = failed(orderID, err.Error())
	case errors.Is(err, payment.ErrIdempotencyConflict):
		// The key is taken by another request: retrying cannot help, and
		// whether the card was charged is for the compensation to settle.
		return messaging.Permanent(fmt.Errorf("charge order %s: %w", orderID, err))
	case err != nil:
		return fmt.Errorf("charge order %s: %w", orderID, err)
	case p.Status == payment.StatusCaptured:
		answer = captured(p)
	case p.Status == payment.StatusFailed:
		answer = failed(orderID, p.FailureReason)
	default:
		return fmt.Errorf("charge order %s: payment %s is %s without an error", orderID, p.ID, p.Status)
	}
	if err := h.participant.Answer(ctx, d, h.reply(d, answer)); err != nil {
		return fmt.Errorf("reply to charge of order %s: %w", orderID, err)
	}
	log.Info("charge answered", slog.String("payment_id", p.ID), slog.String("status", string(p.Status)))
	return nil
}

// logBarrier logs, at info, a command the barrier did not let Proceed (a
// duplicate delivery, a null compensation, a refused action), with a stable
// message and the "barrier" attribute: the chaos harness counts these lines,
// which outlive a killed process where in-memory metrics do not.
func logBarrier(ctx context.Context, log *slog.Logger, corr saga.Correlation, outcome saga.Outcome) {
	if outcome == saga.Proceed {
		return
	}
	log.InfoContext(ctx, "saga barrier outcome", slog.String("step", corr.Step), slog.String("op", corr.Op))
}

// refund handles RefundPayment.
func (h *Handler) refund(ctx context.Context, d saga.Delivery, r *checkoutv1.RefundPayment) error {
	orderID := d.SagaID
	// The barrier row is committed before the refund is settled, so that
	// a ChargePayment still on its way is Refused from now on.
	outcome, err := h.participant.Pass(ctx, d, func(_ *gorm.DB, outcome saga.Outcome) (saga.EncodeReply, error) {
		if outcome != saga.NullCompensation {
			return nil, nil
		}
		// The charge never passed its barrier, so it never reached the
		// PSP, and now it never will: nothing to refund.
		return h.reply(d, refunded(orderID, "")), nil
	})
	if err != nil {
		return fmt.Errorf("refund order %s: %w", orderID, err)
	}
	log := h.log.With(slog.String("order_id", orderID), slog.String("barrier", outcome.String()))
	logBarrier(ctx, log, d.Correlation, outcome)
	if outcome == saga.NullCompensation {
		log.Info("refund before its charge: nothing to refund")
		return nil
	}

	// Proceed, or Duplicate: an earlier delivery may have committed its
	// barrier row and stopped before the refund was made or answered. The
	// settlement is idempotent by key, so it is simply done again.
	refundID, err := h.settle(ctx, orderID, r.GetIdempotencyKey())
	if err != nil {
		return fmt.Errorf("refund order %s: %w", orderID, err)
	}
	if err := h.participant.Answer(ctx, d, h.reply(d, refunded(orderID, refundID))); err != nil {
		return fmt.Errorf("reply to refund of order %s: %w", orderID, err)
	}
	log.Info("refund answered", slog.String("refund_id", refundID))
	return nil
}

// settle makes sure the order's charge holds no captured money: it looks
// the charge up by its key (asking the PSP if it is PENDING) and refunds
// what is left of a captured one under refundKey. It returns the refund's
// id, or "" when nothing was captured or nothing is left.
func (h *Handler) settle(ctx context.Context, orderID, refundKey string) (string, error) {
	p, err := h.payments.Status(ctx, checkoutv1.ChargeKey(orderID))
	switch {
	case errors.Is(err, payment.ErrNotFound):
		return "", nil // never charged
	case err != nil:
		// ErrPSPAmbiguous among others: retry until the PSP answers.
		return "", err
	case p.Status != payment.StatusCaptured:
		return "", nil // FAILED: nothing captured
	}
	amount, err := amountToRefund(p, refundKey)
	if err != nil || amount <= 0 {
		return "", err // amount 0: already refunded by other means
	}
	refund, err := h.payments.Refund(ctx, payment.RefundRequest{
		PaymentID:      p.ID,
		Amount:         money.Amount{Minor: amount, Currency: p.Amount.Currency},
		IdempotencyKey: refundKey,
	})
	if err != nil {
		return "", err // ErrPSPAmbiguous: the PENDING refund is resumed by the retry
	}
	if refund.Status != payment.RefundSucceeded {
		return "", fmt.Errorf("refund %s of payment %s is %s: %s", refund.ID, p.ID, refund.Status, refund.FailureReason)
	}
	return refund.ID, nil
}

// amountToRefund returns how much of the CAPTURED payment p the refund
// under key must give back: the amount of the refund an earlier delivery
// made under key, to resume it, or else what the other refunds (pending or
// succeeded) left.
func amountToRefund(p payment.Payment, key string) (int64, error) {
	left := p.Amount.Minor
	for _, r := range p.Refunds {
		switch {
		case r.IdempotencyKey == key && r.Status == payment.RefundFailed:
			// The PSP rejected this very refund: retrying the key cannot
			// help, and the money is still captured. Someone must look.
			return 0, fmt.Errorf("refund %s of payment %s failed: %s", r.ID, p.ID, r.FailureReason)
		case r.IdempotencyKey == key:
			return r.Amount.Minor, nil
		case r.Status != payment.RefundFailed:
			left -= r.Amount.Minor
		}
	}
	return left, nil
}

// failed, captured and refunded return the envelopes of payment's replies.
func failed(orderID, reason string) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentFailed{PaymentFailed: &checkoutv1.PaymentFailed{
		OrderId: orderID, Reason: reason,
	}}}
}

func captured(p payment.Payment) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentCaptured{PaymentCaptured: &checkoutv1.PaymentCaptured{
		OrderId: p.OrderID, PaymentId: p.ID, PspReference: p.PSPReference,
	}}}
}

func refunded(orderID, refundID string) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentRefunded{PaymentRefunded: &checkoutv1.PaymentRefunded{
		OrderId: orderID, RefundId: refundID,
	}}}
}
