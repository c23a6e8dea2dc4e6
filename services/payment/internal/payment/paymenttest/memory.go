package paymenttest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/microshop/microshop/services/payment/internal/payment"
)

// MemoryStore is a payment.Store in memory, for tests of the layers above
// the store. It passes StoreContract, as the database store does. It is safe
// for concurrent use: one mutex makes every call a transaction of its own.
// The zero value is not usable: call NewMemoryStore.
type MemoryStore struct {
	mu       sync.Mutex
	payments map[string]payment.Payment // by ID; Refunds left empty
	refunded map[string]int64           // by payment ID: minor units of its pending and succeeded refunds
	refunds  map[string]payment.Refund  // by ID
}

var _ payment.Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{payments: map[string]payment.Payment{}, refunded: map[string]int64{}, refunds: map[string]payment.Refund{}}
}

// CreatePayment implements payment.Store.
func (m *MemoryStore) CreatePayment(ctx context.Context, p payment.Payment) (payment.Payment, error) {
	if err := ctx.Err(); err != nil {
		return payment.Payment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if existing, ok := m.paymentWhere(func(q payment.Payment) bool { return q.IdempotencyKey == p.IdempotencyKey }); ok {
		return existing, nil
	}
	if _, ok := m.payments[p.ID]; ok {
		return payment.Payment{}, fmt.Errorf("insert payment: id %s taken", p.ID)
	}
	p.Status, p.PSPReference, p.FailureReason, p.Refunds = payment.StatusPending, "", "", nil
	p.CreatedAt, p.UpdatedAt = storedTime(p.CreatedAt), storedTime(p.UpdatedAt)
	m.payments[p.ID] = p
	return m.withRefunds(p), nil
}

// Payment implements payment.Store.
func (m *MemoryStore) Payment(ctx context.Context, id string) (payment.Payment, error) {
	return m.payment(ctx, func(p payment.Payment) bool { return p.ID == id })
}

// PaymentByKey implements payment.Store.
func (m *MemoryStore) PaymentByKey(ctx context.Context, key string) (payment.Payment, error) {
	return m.payment(ctx, func(p payment.Payment) bool { return p.IdempotencyKey == key })
}

func (m *MemoryStore) payment(ctx context.Context, match func(payment.Payment) bool) (payment.Payment, error) {
	if err := ctx.Err(); err != nil {
		return payment.Payment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.paymentWhere(match)
	if !ok {
		return payment.Payment{}, payment.ErrNotFound
	}
	return p, nil
}

// paymentWhere returns the payment match accepts, with its refunds. The
// caller holds m.mu.
func (m *MemoryStore) paymentWhere(match func(payment.Payment) bool) (payment.Payment, bool) {
	for _, p := range m.payments {
		if match(p) {
			return m.withRefunds(p), true
		}
	}
	return payment.Payment{}, false
}

// PaymentsOfOrder implements payment.Store.
func (m *MemoryStore) PaymentsOfOrder(ctx context.Context, orderID, after string, limit int) ([]payment.Payment, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := []payment.Payment{}
	for _, id := range slices.Sorted(maps.Keys(m.payments)) {
		if p := m.payments[id]; p.OrderID == orderID && id > after && len(ps) < limit {
			ps = append(ps, m.withRefunds(p))
		}
	}
	return ps, nil
}

// SettlePayment implements payment.Store.
func (m *MemoryStore) SettlePayment(ctx context.Context, id string, o payment.Outcome) (payment.Payment, error) {
	if err := ctx.Err(); err != nil {
		return payment.Payment{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.payments[id]
	if !ok {
		return payment.Payment{}, payment.ErrNotFound
	}
	if p.Status == payment.StatusPending {
		p.Status = payment.StatusFailed
		if o.Succeeded {
			p.Status = payment.StatusCaptured
		}
		p.PSPReference, p.FailureReason, p.UpdatedAt = o.PSPReference, o.FailureReason, storedTime(o.At)
		m.payments[id] = p
	}
	return m.withRefunds(p), nil
}

// CreateRefund implements payment.Store.
func (m *MemoryStore) CreateRefund(ctx context.Context, r payment.Refund) (payment.Refund, error) {
	if err := ctx.Err(); err != nil {
		return payment.Refund{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if existing, ok := m.refundWhere(func(q payment.Refund) bool { return q.IdempotencyKey == r.IdempotencyKey }); ok {
		return existing, nil
	}
	p, ok := m.payments[r.PaymentID]
	switch {
	case !ok:
		return payment.Refund{}, payment.ErrNotFound
	case p.Status != payment.StatusCaptured:
		return payment.Refund{}, payment.ErrNotCaptured
	case p.Amount.Currency != r.Amount.Currency:
		return payment.Refund{}, fmt.Errorf("%w: refund in %s of a payment in %s", payment.ErrInvalid, r.Amount.Currency, p.Amount.Currency)
	case m.refunded[p.ID]+r.Amount.Minor > p.Amount.Minor:
		return payment.Refund{}, payment.ErrRefundExceedsPayment
	}
	if _, ok := m.refunds[r.ID]; ok {
		return payment.Refund{}, fmt.Errorf("insert refund: id %s taken", r.ID)
	}
	r.Status, r.PSPReference, r.FailureReason = payment.RefundPending, "", ""
	r.CreatedAt, r.UpdatedAt = storedTime(r.CreatedAt), storedTime(r.UpdatedAt)
	m.refunds[r.ID] = r
	m.refunded[p.ID] += r.Amount.Minor
	return r, nil
}

// RefundByKey implements payment.Store.
func (m *MemoryStore) RefundByKey(ctx context.Context, key string) (payment.Refund, error) {
	if err := ctx.Err(); err != nil {
		return payment.Refund{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.refundWhere(func(r payment.Refund) bool { return r.IdempotencyKey == key })
	if !ok {
		return payment.Refund{}, payment.ErrNotFound
	}
	return r, nil
}

// refundWhere returns the refund match accepts. The caller holds m.mu.
func (m *MemoryStore) refundWhere(match func(payment.Refund) bool) (payment.Refund, bool) {
	for _, r := range m.refunds {
		if match(r) {
			return r, true
		}
	}
	return payment.Refund{}, false
}

// SettleRefund implements payment.Store.
func (m *MemoryStore) SettleRefund(ctx context.Context, id string, o payment.Outcome) (payment.Refund, error) {
	if err := ctx.Err(); err != nil {
		return payment.Refund{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.refunds[id]
	if !ok {
		return payment.Refund{}, payment.ErrNotFound
	}
	if r.Status != payment.RefundPending {
		return r, nil
	}
	r.Status = payment.RefundFailed
	if o.Succeeded {
		r.Status = payment.RefundSucceeded
	} else {
		m.refunded[r.PaymentID] -= r.Amount.Minor // a failed refund gives its amount back
	}
	r.PSPReference, r.FailureReason, r.UpdatedAt = o.PSPReference, o.FailureReason, storedTime(o.At)
	m.refunds[id] = r
	return r, nil
}

// withRefunds returns p with its refunds, in id order. The caller holds m.mu.
func (m *MemoryStore) withRefunds(p payment.Payment) payment.Payment {
	p.Refunds = []payment.Refund{}
	for _, r := range m.refunds {
		if r.PaymentID == p.ID {
			p.Refunds = append(p.Refunds, r)
		}
	}
	slices.SortFunc(p.Refunds, func(a, b payment.Refund) int { return cmp.Compare(a.ID, b.ID) })
	return p
}

// storedTime is t as the database store keeps it: UTC, to the microsecond.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
