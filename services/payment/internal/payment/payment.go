// Package payment is the payment service's domain: payments taken through
// the payment service provider (PSP), refunds of them, and the use cases the
// checkout saga calls on a Service.
//
// The hard part is the ambiguous PSP call: a charge whose request timed out
// may or may not have charged the card. So every payment and refund is
// written PENDING, with the idempotency key it is sent to the PSP with,
// before the PSP is called; it is only ever sent with that key; and a PENDING
// one is settled later by asking the PSP what happened under the key (Status,
// RefundStatus). A card is therefore never charged twice for one payment
// (invariant I4) and no charge is forgotten. Card numbers pass through and
// are never stored.
package payment

import (
	"context"
	"errors"
	"time"

	"github.com/microshop/microshop/pkg/money"
)

// Status is where a payment is in its life: PENDING until the PSP's answer
// is known, then CAPTURED or FAILED for good.
type Status string

// Payment statuses.
const (
	StatusPending  Status = "PENDING"
	StatusCaptured Status = "CAPTURED"
	StatusFailed   Status = "FAILED"
)

// Payment is one charge of an order's total to a card.
type Payment struct {
	ID      string
	OrderID string
	Amount  money.Amount
	Status  Status
	// PSPReference is the PSP's charge id: set once CAPTURED, and on a
	// charge the PSP declined.
	PSPReference string
	// FailureReason says why a payment FAILED: the PSP's decline code (e.g.
	// "insufficient_funds"), "rejected: ..." when the PSP refused the
	// request, or "not charged" when the PSP never saw it.
	FailureReason string
	// IdempotencyKey is the key the payment is charged under at the PSP,
	// unique among payments (the saga uses its step id).
	IdempotencyKey string
	CreatedAt      time.Time
	// UpdatedAt is when the status last changed; refunds keep their own times.
	UpdatedAt time.Time
	// Refunds are the payment's refunds, oldest first; every read fills them in.
	Refunds []Refund
}

// RefundStatus is where a refund is in its life, like Status.
type RefundStatus string

// Refund statuses.
const (
	RefundPending   RefundStatus = "PENDING"
	RefundSucceeded RefundStatus = "SUCCEEDED"
	RefundFailed    RefundStatus = "FAILED"
)

// Refund gives back part or all of a CAPTURED payment.
type Refund struct {
	ID        string
	PaymentID string
	Amount    money.Amount
	Status    RefundStatus
	// PSPReference is the PSP's refund id, set once SUCCEEDED.
	PSPReference string
	// FailureReason says why a refund FAILED: "rejected: ..." or "not refunded".
	FailureReason string
	// IdempotencyKey is the key the refund is made under at the PSP, unique among refunds.
	IdempotencyKey string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Errors of the use cases and the ports. Match them with errors.Is.
var (
	// ErrNotFound: no payment or refund has that id or key.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a request is malformed; the message says which field.
	ErrInvalid = errors.New("invalid request")
	// ErrIdempotencyConflict: the idempotency key was used before with a
	// different request (another order, amount, card or payment).
	ErrIdempotencyConflict = errors.New("idempotency key reused with a different request")
	// ErrNotCaptured: a refund of a payment that is not CAPTURED.
	ErrNotCaptured = errors.New("payment is not captured")
	// ErrRefundExceedsPayment: a refund larger than the payment minus its
	// other refunds (pending or succeeded).
	ErrRefundExceedsPayment = errors.New("refund exceeds the amount left to refund")
	// ErrPSPAmbiguous: the PSP call may or may not have taken effect
	// (timeout, connection lost, 5xx). The payment or refund stays PENDING;
	// settle it with Status or RefundStatus once the PSP answers again.
	ErrPSPAmbiguous = errors.New("payment provider outcome unknown")
	// ErrPSPUnavailable: the call was not made — the circuit breaker in
	// front of the PSP is open — so this attempt charged nothing. PSP
	// methods return it together with ErrPSPAmbiguous: an earlier attempt
	// under the same key may still have reached the PSP.
	ErrPSPUnavailable = errors.New("payment provider unavailable")
	// ErrPSPNotFound: the PSP has nothing under the idempotency key, so the
	// request never took effect. Returned by PSP.ChargeStatus and RefundStatus.
	ErrPSPNotFound = errors.New("payment provider has nothing under this key")
)

// RejectedError is returned by a PSP that refused a request outright (a
// 4xx validation answer): nothing happened, and retrying will not help.
type RejectedError struct {
	// Reason is the PSP's explanation, e.g. "card_number: must be 12 to 19 digits".
	Reason string
}

func (e *RejectedError) Error() string { return "payment provider rejected the request: " + e.Reason }

// Store keeps payments and refunds. Implementations are safe for concurrent
// use, by several processes sharing the database too: status changes are
// conditional (only a PENDING row moves) and refund totals are checked
// atomically.
type Store interface {
	// CreatePayment inserts p (PENDING) unless a payment with its
	// idempotency key exists, and returns the stored payment: p, or the one
	// already there.
	CreatePayment(ctx context.Context, p Payment) (Payment, error)
	// Payment returns the payment with the id, or ErrNotFound.
	Payment(ctx context.Context, id string) (Payment, error)
	// PaymentByKey returns the payment with the idempotency key, or ErrNotFound.
	PaymentByKey(ctx context.Context, key string) (Payment, error)
	// PaymentsOfOrder returns up to limit payments of the order whose ids
	// sort after after ("" for the first page), in id order.
	PaymentsOfOrder(ctx context.Context, orderID, after string, limit int) ([]Payment, error)
	// SettlePayment moves the PENDING payment with the id to CAPTURED or
	// FAILED as o says, and returns the payment as stored afterwards. A
	// payment already final is returned unchanged.
	SettlePayment(ctx context.Context, id string, o Outcome) (Payment, error)

	// CreateRefund inserts r (PENDING) unless a refund with its idempotency
	// key exists, and returns the stored refund. A new refund's amount is
	// reserved against its payment: it fails with ErrNotFound for an unknown
	// payment, ErrNotCaptured, or ErrRefundExceedsPayment.
	CreateRefund(ctx context.Context, r Refund) (Refund, error)
	// RefundByKey returns the refund with the idempotency key, or ErrNotFound.
	RefundByKey(ctx context.Context, key string) (Refund, error)
	// SettleRefund moves the PENDING refund with the id to SUCCEEDED or
	// FAILED as o says (a failed refund gives its amount back to the
	// payment), and returns the refund as stored afterwards.
	SettleRefund(ctx context.Context, id string, o Outcome) (Refund, error)
}

// Outcome is how the PSP settled a pending payment or refund.
type Outcome struct {
	// Succeeded moves a payment to CAPTURED and a refund to SUCCEEDED;
	// false moves either to FAILED.
	Succeeded     bool
	PSPReference  string
	FailureReason string
	// At is when the outcome became known: the new UpdatedAt.
	At time.Time
}

// PSP is the payment service provider. Every method's error is one of
// ErrPSPAmbiguous (it may have happened), *RejectedError (it did not happen),
// ErrIdempotencyConflict (the key was used with another request),
// ErrPSPNotFound (lookups only) or, for a request that could not even be
// built, another error; the Service treats any but a rejection or
// ErrPSPNotFound as "may have happened".
type PSP interface {
	// Charge charges a card under an idempotency key; repeating it with the
	// same key and values charges once.
	Charge(ctx context.Context, c ChargeAttempt) (PSPCharge, error)
	// ChargeStatus looks up the charge made under an idempotency key.
	ChargeStatus(ctx context.Context, key string) (PSPCharge, error)
	// Refund refunds part of a charge under an idempotency key.
	Refund(ctx context.Context, r RefundAttempt) (PSPRefund, error)
	// RefundStatus looks up the refund made under an idempotency key.
	RefundStatus(ctx context.Context, key string) (PSPRefund, error)
}

// ChargeAttempt is what is sent to the PSP to charge a card.
type ChargeAttempt struct {
	IdempotencyKey string
	Amount         money.Amount
	CardNumber     string
}

// PSPCharge is the PSP's record of a charge.
type PSPCharge struct {
	// Reference is the PSP's charge id.
	Reference string
	// Declined is true when the card was declined; DeclineCode says why.
	Declined    bool
	DeclineCode string
}

// RefundAttempt is what is sent to the PSP to refund a charge.
type RefundAttempt struct {
	IdempotencyKey string
	// ChargeReference is the PSP's id of the charge to refund.
	ChargeReference string
	Amount          money.Amount
}

// PSPRefund is the PSP's record of a refund (a recorded refund has succeeded).
type PSPRefund struct {
	// Reference is the PSP's refund id.
	Reference string
}
