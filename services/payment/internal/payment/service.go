package payment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/money"
)

// Service holds the payment use cases. Create it with NewService; it is
// safe for concurrent use, also by several processes sharing a database.
//
// Outcomes: a use case that reaches a final status returns a nil error, and
// a decline is such an outcome — check Payment.Status and FailureReason.
// An error that leaves a payment or refund PENDING (ErrPSPAmbiguous, or the
// PSP's ErrIdempotencyConflict) comes with it, since the caller may want its
// id; every other error comes with a zero value.
type Service struct {
	store Store
	psp   PSP
	now   func() time.Time
}

// NewService returns a Service keeping state in store and charging through
// psp. now is the clock (time.Now in production).
func NewService(store Store, psp PSP, now func() time.Time) *Service {
	return &Service{store: store, psp: psp, now: now}
}

// clock returns now in UTC at the databases' precision (microseconds), so
// that what is returned equals what is read back later.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// maxKeyLen is the longest idempotency key the PSP accepts.
const maxKeyLen = 255

// ChargeRequest asks for an order's total to be charged to a card.
type ChargeRequest struct {
	OrderID string
	Amount  money.Amount
	// CardNumber goes to the PSP and nowhere else: it is neither stored nor logged.
	CardNumber string
	// IdempotencyKey identifies this payment here and at the PSP (the saga
	// uses its step id): repeating a Charge with it never charges again.
	IdempotencyKey string
}

func (r ChargeRequest) validate() error {
	switch {
	case r.OrderID == "":
		return fmt.Errorf("%w: order id is required", ErrInvalid)
	case r.Amount.Minor <= 0 || !money.ValidCurrency(r.Amount.Currency):
		return fmt.Errorf("%w: amount must be positive, in an ISO 4217 currency", ErrInvalid)
	case r.CardNumber == "":
		return fmt.Errorf("%w: card number is required", ErrInvalid)
	}
	return validateKey(r.IdempotencyKey)
}

func validateKey(key string) error {
	if key == "" || len(key) > maxKeyLen {
		return fmt.Errorf("%w: idempotency key must be 1 to %d characters", ErrInvalid, maxKeyLen)
	}
	return nil
}

// Charge charges req.Amount to the card, once per idempotency key.
//
// It first records a PENDING payment under the key. If a payment with the
// key exists, a final one is returned as it is and a PENDING one is charged
// again with the same key (the PSP then answers with the charge it already
// made, if any). The PSP's answer settles the payment: CAPTURED, or FAILED
// when the card was declined or the PSP rejected the request (nil error in
// both cases). When the answer is unknown the payment stays PENDING and
// Charge returns it with ErrPSPAmbiguous: settle it with Status. A new
// payment whose charge was not even sent (ErrPSPUnavailable: the PSP's
// breaker is open) is FAILED with ReasonPSPUnavailable at once; a PENDING
// one from an earlier attempt stays PENDING, as that attempt may have
// charged.
// A key reused for another order or amount gives ErrIdempotencyConflict.
func (s *Service) Charge(ctx context.Context, req ChargeRequest) (Payment, error) {
	if err := req.validate(); err != nil {
		return Payment{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Payment{}, fmt.Errorf("charge: new id: %w", err)
	}
	now := s.clock()
	p, err := s.store.CreatePayment(ctx, Payment{
		ID:             id.String(),
		OrderID:        req.OrderID,
		Amount:         req.Amount,
		Status:         StatusPending,
		IdempotencyKey: req.IdempotencyKey,
		CreatedAt:      now,
		UpdatedAt:      now,
	})
	if err != nil {
		return Payment{}, fmt.Errorf("charge: %w", err)
	}
	if p.OrderID != req.OrderID || p.Amount != req.Amount {
		return Payment{}, fmt.Errorf("charge under key %q: %w", req.IdempotencyKey, ErrIdempotencyConflict)
	}
	if p.Status != StatusPending {
		return p, nil
	}
	res, err := s.psp.Charge(ctx, ChargeAttempt{IdempotencyKey: p.IdempotencyKey, Amount: p.Amount, CardNumber: req.CardNumber})
	if errors.Is(err, ErrPSPUnavailable) && p.ID == id.String() {
		// The payment is new and this attempt was never sent: nothing
		// was charged, certainly. Fail it now rather than leave it to
		// the step's deadline.
		o := Outcome{FailureReason: ReasonPSPUnavailable, At: s.clock()}
		settled, err := s.store.SettlePayment(ctx, p.ID, o)
		if err != nil {
			return Payment{}, fmt.Errorf("settle payment %s: %w", p.ID, err)
		}
		return settled, nil
	}
	return s.settlePayment(ctx, p, res, err)
}

// ReasonPSPUnavailable is the FailureReason of a payment failed fast
// because the PSP's circuit breaker was open.
const ReasonPSPUnavailable = "payment provider unavailable"

// Status returns the payment charged under an idempotency key, settling it
// first if it is PENDING: the PSP's record of the charge makes it CAPTURED
// or FAILED (declined), no record at all makes it FAILED "not charged", and
// no answer leaves it PENDING with ErrPSPAmbiguous. ErrNotFound if no
// payment has the key.
//
// A PSP without a record settles the payment for good, so call Status only
// once no Charge with the key can still be on its way to the PSP: the saga
// calls it after the step's deadline, which is longer than the PSP timeout.
func (s *Service) Status(ctx context.Context, idempotencyKey string) (Payment, error) {
	p, err := s.store.PaymentByKey(ctx, idempotencyKey)
	if err != nil {
		return Payment{}, fmt.Errorf("payment status: %w", err)
	}
	if p.Status != StatusPending {
		return p, nil
	}
	res, err := s.psp.ChargeStatus(ctx, idempotencyKey)
	return s.settlePayment(ctx, p, res, err)
}

// settlePayment turns the PSP's answer about p into p's final status, or
// leaves p PENDING when the answer says nothing certain.
func (s *Service) settlePayment(ctx context.Context, p Payment, res PSPCharge, pspErr error) (Payment, error) {
	var (
		o        Outcome
		rejected *RejectedError
	)
	switch {
	case pspErr == nil && !res.Declined:
		o = Outcome{Succeeded: true, PSPReference: res.Reference}
	case pspErr == nil:
		o = Outcome{PSPReference: res.Reference, FailureReason: res.DeclineCode}
	case errors.As(pspErr, &rejected):
		o = Outcome{FailureReason: "rejected: " + rejected.Reason}
	case errors.Is(pspErr, ErrPSPNotFound):
		o = Outcome{FailureReason: "not charged"}
	default: // it may have happened: only the PSP can tell, later
		return p, fmt.Errorf("charge payment %s: %w", p.ID, pspErr)
	}
	o.At = s.clock()
	settled, err := s.store.SettlePayment(ctx, p.ID, o)
	if err != nil {
		return Payment{}, fmt.Errorf("settle payment %s: %w", p.ID, err)
	}
	return settled, nil
}

// RefundRequest asks for part or all of a CAPTURED payment back.
type RefundRequest struct {
	PaymentID string
	// Amount is in the payment's currency.
	Amount money.Amount
	// IdempotencyKey identifies this refund here and at the PSP.
	IdempotencyKey string
}

func (r RefundRequest) validate() error {
	switch {
	case r.PaymentID == "":
		return fmt.Errorf("%w: payment id is required", ErrInvalid)
	case r.Amount.Minor <= 0:
		return fmt.Errorf("%w: amount must be positive", ErrInvalid)
	}
	return validateKey(r.IdempotencyKey)
}

// Refund refunds req.Amount of a CAPTURED payment, once per idempotency key,
// following the same pattern as Charge: a PENDING refund is recorded first
// (with its amount reserved, so the refunds of a payment never add up to
// more than it), then the PSP's answer settles it SUCCEEDED, or FAILED when
// the PSP rejected it. An unknown answer leaves it PENDING and returns it
// with ErrPSPAmbiguous: settle it with RefundStatus. Errors: ErrNotFound
// (payment), ErrInvalid (e.g. another currency), ErrNotCaptured,
// ErrRefundExceedsPayment, ErrIdempotencyConflict.
func (s *Service) Refund(ctx context.Context, req RefundRequest) (Refund, error) {
	if err := req.validate(); err != nil {
		return Refund{}, err
	}
	p, err := s.store.Payment(ctx, req.PaymentID)
	if err != nil {
		return Refund{}, fmt.Errorf("refund: payment %s: %w", req.PaymentID, err)
	}
	if req.Amount.Currency != p.Amount.Currency {
		return Refund{}, fmt.Errorf("%w: refund in %q of a payment in %s", ErrInvalid, req.Amount.Currency, p.Amount.Currency)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Refund{}, fmt.Errorf("refund: new id: %w", err)
	}
	now := s.clock()
	r, err := s.store.CreateRefund(ctx, Refund{
		ID:             id.String(),
		PaymentID:      p.ID,
		Amount:         req.Amount,
		Status:         RefundPending,
		IdempotencyKey: req.IdempotencyKey,
		CreatedAt:      now,
		UpdatedAt:      now,
	})
	if err != nil {
		return Refund{}, fmt.Errorf("refund payment %s: %w", p.ID, err)
	}
	if r.PaymentID != req.PaymentID || r.Amount != req.Amount {
		return Refund{}, fmt.Errorf("refund under key %q: %w", req.IdempotencyKey, ErrIdempotencyConflict)
	}
	if r.Status != RefundPending {
		return r, nil
	}
	res, err := s.psp.Refund(ctx, RefundAttempt{IdempotencyKey: r.IdempotencyKey, ChargeReference: p.PSPReference, Amount: r.Amount})
	return s.settleRefund(ctx, r, res, err)
}

// RefundStatus returns the refund made under an idempotency key, settling
// it first if it is PENDING, as Status does for payments: FAILED "not
// refunded" (its amount given back to the payment) when the PSP has no
// record. The same caution applies: call it only once no Refund with the
// key can still be on its way.
func (s *Service) RefundStatus(ctx context.Context, idempotencyKey string) (Refund, error) {
	r, err := s.store.RefundByKey(ctx, idempotencyKey)
	if err != nil {
		return Refund{}, fmt.Errorf("refund status: %w", err)
	}
	if r.Status != RefundPending {
		return r, nil
	}
	res, err := s.psp.RefundStatus(ctx, idempotencyKey)
	return s.settleRefund(ctx, r, res, err)
}

func (s *Service) settleRefund(ctx context.Context, r Refund, res PSPRefund, pspErr error) (Refund, error) {
	var (
		o        Outcome
		rejected *RejectedError
	)
	switch {
	case pspErr == nil:
		o = Outcome{Succeeded: true, PSPReference: res.Reference}
	case errors.As(pspErr, &rejected):
		o = Outcome{FailureReason: "rejected: " + rejected.Reason}
	case errors.Is(pspErr, ErrPSPNotFound):
		o = Outcome{FailureReason: "not refunded"}
	default:
		return r, fmt.Errorf("refund %s: %w", r.ID, pspErr)
	}
	o.At = s.clock()
	settled, err := s.store.SettleRefund(ctx, r.ID, o)
	if err != nil {
		return Refund{}, fmt.Errorf("settle refund %s: %w", r.ID, err)
	}
	return settled, nil
}

// Payment returns the payment with the id, or ErrNotFound.
func (s *Service) Payment(ctx context.Context, id string) (Payment, error) {
	p, err := s.store.Payment(ctx, id)
	if err != nil {
		return Payment{}, fmt.Errorf("payment %s: %w", id, err)
	}
	return p, nil
}

// MaxPageSize bounds ListQuery.Limit.
const MaxPageSize = 100

// ListQuery selects one page of an order's payments.
type ListQuery struct {
	OrderID string
	// After is the Next of the previous page; "" for the first page.
	After string
	// Limit is the page size, 1 to MaxPageSize.
	Limit int
}

// Page is one page of payments, in creation order.
type Page struct {
	Payments []Payment
	// Next continues the listing as ListQuery.After; "" on the last page.
	Next string
}

// PaymentsOfOrder lists an order's payments (an order may have several:
// one per checkout attempt), oldest first, one page at a time.
func (s *Service) PaymentsOfOrder(ctx context.Context, q ListQuery) (Page, error) {
	if q.OrderID == "" || q.Limit < 1 || q.Limit > MaxPageSize {
		return Page{}, fmt.Errorf("%w: order id is required and limit must be 1 to %d", ErrInvalid, MaxPageSize)
	}
	// One more than asked tells whether there is a next page.
	ps, err := s.store.PaymentsOfOrder(ctx, q.OrderID, q.After, q.Limit+1)
	if err != nil {
		return Page{}, fmt.Errorf("payments of order %s: %w", q.OrderID, err)
	}
	page := Page{Payments: ps}
	if len(ps) > q.Limit {
		page.Payments = ps[:q.Limit]
		page.Next = ps[q.Limit-1].ID
	}
	return page, nil
}
