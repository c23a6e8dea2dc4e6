// Package db stores payments and refunds in the service's relational
// database (SQLite or PostgreSQL, through GORM and pkg/database).
//
// Correctness comes from the schema and conditional statements, not from
// row locks, because SQLite ignores SELECT ... FOR UPDATE: idempotency keys
// are UNIQUE, statuses move only by UPDATE ... WHERE status = 'PENDING', and
// a refund reserves its amount with UPDATE ... WHERE refunded_minor + amount
// <= amount_minor (the schema's CHECK refuses over-refunds as well).
package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/payment/internal/payment"
)

// Store implements payment.Store. Create it with NewStore; it is safe for
// concurrent use.
type Store struct {
	db *gorm.DB
}

var _ payment.Store = (*Store)(nil)

// NewStore returns a Store on db, a database migrated with the service's
// migrations.
func NewStore(db *database.DB) *Store { return &Store{db: db.DB} }

type paymentRow struct {
	ID             string    `gorm:"column:id;primaryKey"`
	OrderID        string    `gorm:"column:order_id"`
	AmountMinor    int64     `gorm:"column:amount_minor"`
	Currency       string    `gorm:"column:currency"`
	RefundedMinor  int64     `gorm:"column:refunded_minor"`
	Status         string    `gorm:"column:status"`
	PSPReference   string    `gorm:"column:psp_reference"`
	FailureReason  string    `gorm:"column:failure_reason"`
	IdempotencyKey string    `gorm:"column:idempotency_key"`
	CreatedAt      time.Time `gorm:"column:created_at"`
	UpdatedAt      time.Time `gorm:"column:updated_at"`
}

func (paymentRow) TableName() string { return "payments" }

func (r paymentRow) domain(refunds []payment.Refund) payment.Payment {
	return payment.Payment{
		ID:             r.ID,
		OrderID:        r.OrderID,
		Amount:         money.Amount{Minor: r.AmountMinor, Currency: r.Currency},
		Status:         payment.Status(r.Status),
		PSPReference:   r.PSPReference,
		FailureReason:  r.FailureReason,
		IdempotencyKey: r.IdempotencyKey,
		CreatedAt:      r.CreatedAt.UTC(),
		UpdatedAt:      r.UpdatedAt.UTC(),
		Refunds:        refunds,
	}
}

type refundRow struct {
	ID             string    `gorm:"column:id;primaryKey"`
	PaymentID      string    `gorm:"column:payment_id"`
	AmountMinor    int64     `gorm:"column:amount_minor"`
	Currency       string    `gorm:"column:currency"`
	Status         string    `gorm:"column:status"`
	PSPReference   string    `gorm:"column:psp_reference"`
	FailureReason  string    `gorm:"column:failure_reason"`
	IdempotencyKey string    `gorm:"column:idempotency_key"`
	CreatedAt      time.Time `gorm:"column:created_at"`
	UpdatedAt      time.Time `gorm:"column:updated_at"`
}

func (refundRow) TableName() string { return "refunds" }

func (r refundRow) domain() payment.Refund {
	return payment.Refund{
		ID:             r.ID,
		PaymentID:      r.PaymentID,
		Amount:         money.Amount{Minor: r.AmountMinor, Currency: r.Currency},
		Status:         payment.RefundStatus(r.Status),
		PSPReference:   r.PSPReference,
		FailureReason:  r.FailureReason,
		IdempotencyKey: r.IdempotencyKey,
		CreatedAt:      r.CreatedAt.UTC(),
		UpdatedAt:      r.UpdatedAt.UTC(),
	}
}

// CreatePayment implements payment.Store.
func (s *Store) CreatePayment(ctx context.Context, p payment.Payment) (payment.Payment, error) {
	row := paymentRow{
		ID:             p.ID,
		OrderID:        p.OrderID,
		AmountMinor:    p.Amount.Minor,
		Currency:       p.Amount.Currency,
		Status:         string(payment.StatusPending),
		IdempotencyKey: p.IdempotencyKey,
		CreatedAt:      p.CreatedAt,
		UpdatedAt:      p.UpdatedAt,
	}
	err := s.db.WithContext(ctx).Create(&row).Error
	switch {
	case errors.Is(err, gorm.ErrDuplicatedKey): // the key is taken: that payment is the answer
		return s.PaymentByKey(ctx, p.IdempotencyKey)
	case err != nil:
		return payment.Payment{}, fmt.Errorf("insert payment: %w", err)
	}
	return row.domain([]payment.Refund{}), nil
}

// Payment implements payment.Store.
func (s *Store) Payment(ctx context.Context, id string) (payment.Payment, error) {
	return s.payment(ctx, "id = ?", id)
}

// PaymentByKey implements payment.Store.
func (s *Store) PaymentByKey(ctx context.Context, key string) (payment.Payment, error) {
	return s.payment(ctx, "idempotency_key = ?", key)
}

func (s *Store) payment(ctx context.Context, where string, arg string) (payment.Payment, error) {
	var rows []paymentRow
	if err := s.db.WithContext(ctx).Where(where, arg).Limit(1).Find(&rows).Error; err != nil {
		return payment.Payment{}, fmt.Errorf("select payment: %w", err)
	}
	if len(rows) == 0 {
		return payment.Payment{}, payment.ErrNotFound
	}
	ps, err := s.withRefunds(ctx, rows)
	if err != nil {
		return payment.Payment{}, err
	}
	return ps[0], nil
}

// PaymentsOfOrder implements payment.Store.
func (s *Store) PaymentsOfOrder(ctx context.Context, orderID, after string, limit int) ([]payment.Payment, error) {
	var rows []paymentRow
	err := s.db.WithContext(ctx).
		Where("order_id = ? AND id > ?", orderID, after).
		Order("id").Limit(limit).
		Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("select payments of order: %w", err)
	}
	return s.withRefunds(ctx, rows)
}

// withRefunds turns payment rows into payments with their refunds, read in
// one query.
func (s *Store) withRefunds(ctx context.Context, rows []paymentRow) ([]payment.Payment, error) {
	ps := make([]payment.Payment, 0, len(rows))
	if len(rows) == 0 {
		return ps, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var refunds []refundRow
	if err := s.db.WithContext(ctx).Where("payment_id IN ?", ids).Order("id").Find(&refunds).Error; err != nil {
		return nil, fmt.Errorf("select refunds: %w", err)
	}
	byPayment := make(map[string][]payment.Refund, len(rows))
	for _, r := range refunds {
		byPayment[r.PaymentID] = append(byPayment[r.PaymentID], r.domain())
	}
	for _, r := range rows {
		refunds := byPayment[r.ID]
		if refunds == nil {
			refunds = []payment.Refund{}
		}
		ps = append(ps, r.domain(refunds))
	}
	return ps, nil
}

// SettlePayment implements payment.Store.
func (s *Store) SettlePayment(ctx context.Context, id string, o payment.Outcome) (payment.Payment, error) {
	status := payment.StatusFailed
	if o.Succeeded {
		status = payment.StatusCaptured
	}
	var rows []paymentRow
	err := s.db.WithContext(ctx).Raw(
		`UPDATE payments SET status = ?, psp_reference = ?, failure_reason = ?, updated_at = ?
		 WHERE id = ? AND status = ?
		 RETURNING *`,
		string(status), o.PSPReference, o.FailureReason, o.At, id, string(payment.StatusPending),
	).Scan(&rows).Error
	if err != nil {
		return payment.Payment{}, fmt.Errorf("settle payment: %w", err)
	}
	if len(rows) == 1 {
		// This call settled it, from PENDING: it has no refunds, which
		// only a CAPTURED payment can have (CreateRefund).
		return rows[0].domain([]payment.Refund{}), nil
	}
	// A concurrent call settled it: the stored row is the truth.
	return s.Payment(ctx, id)
}

// errRefundExists rolls back CreateRefund's transaction when the
// idempotency key turns out to be taken.
var errRefundExists = errors.New("refund exists")

// CreateRefund implements payment.Store.
func (s *Store) CreateRefund(ctx context.Context, r payment.Refund) (payment.Refund, error) {
	if existing, err := s.RefundByKey(ctx, r.IdempotencyKey); !errors.Is(err, payment.ErrNotFound) {
		return existing, err // the refund already made under the key, or a failure
	}
	row := refundRow{
		ID:             r.ID,
		PaymentID:      r.PaymentID,
		AmountMinor:    r.Amount.Minor,
		Currency:       r.Amount.Currency,
		Status:         string(payment.RefundPending),
		IdempotencyKey: r.IdempotencyKey,
		CreatedAt:      r.CreatedAt,
		UpdatedAt:      r.UpdatedAt,
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var p paymentRow
		if err := tx.Where("id = ?", r.PaymentID).Take(&p).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return payment.ErrNotFound
		} else if err != nil {
			return fmt.Errorf("select payment: %w", err)
		}
		// Insert first: on PostgreSQL a concurrent insert of the same key
		// waits here for this transaction, then fails as a duplicate.
		if err := tx.Create(&row).Error; errors.Is(err, gorm.ErrDuplicatedKey) {
			return errRefundExists
		} else if err != nil {
			return fmt.Errorf("insert refund: %w", err)
		}
		res := tx.Exec(
			`UPDATE payments SET refunded_minor = refunded_minor + ?
			 WHERE id = ? AND status = ? AND currency = ? AND refunded_minor + ? <= amount_minor`,
			row.AmountMinor, row.PaymentID, string(payment.StatusCaptured), row.Currency, row.AmountMinor,
		)
		switch {
		case res.Error != nil:
			return fmt.Errorf("reserve refund amount: %w", res.Error)
		case res.RowsAffected == 1:
			return nil
		case p.Status != string(payment.StatusCaptured):
			return payment.ErrNotCaptured
		case p.Currency != row.Currency:
			return fmt.Errorf("%w: refund in %s of a payment in %s", payment.ErrInvalid, row.Currency, p.Currency)
		default:
			return payment.ErrRefundExceedsPayment
		}
	})
	switch {
	case errors.Is(err, errRefundExists):
		return s.RefundByKey(ctx, r.IdempotencyKey)
	case err != nil:
		return payment.Refund{}, err
	}
	return row.domain(), nil
}

// RefundByKey implements payment.Store.
func (s *Store) RefundByKey(ctx context.Context, key string) (payment.Refund, error) {
	return refund(s.db.WithContext(ctx), "idempotency_key = ?", key)
}

func refund(tx *gorm.DB, where string, arg string) (payment.Refund, error) {
	var rows []refundRow
	if err := tx.Where(where, arg).Limit(1).Find(&rows).Error; err != nil {
		return payment.Refund{}, fmt.Errorf("select refund: %w", err)
	}
	if len(rows) == 0 {
		return payment.Refund{}, payment.ErrNotFound
	}
	return rows[0].domain(), nil
}

// SettleRefund implements payment.Store.
func (s *Store) SettleRefund(ctx context.Context, id string, o payment.Outcome) (payment.Refund, error) {
	status := payment.RefundFailed
	if o.Succeeded {
		status = payment.RefundSucceeded
	}
	var settled payment.Refund
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		res := tx.Exec(
			`UPDATE refunds SET status = ?, psp_reference = ?, failure_reason = ?, updated_at = ?
			 WHERE id = ? AND status = ?`,
			string(status), o.PSPReference, o.FailureReason, o.At, id, string(payment.RefundPending),
		)
		if res.Error != nil {
			return fmt.Errorf("settle refund: %w", res.Error)
		}
		var err error
		if settled, err = refund(tx, "id = ?", id); err != nil {
			return err
		}
		if res.RowsAffected == 0 || o.Succeeded {
			return nil
		}
		// This call failed the refund: give its reserved amount back.
		err = tx.Exec(`UPDATE payments SET refunded_minor = refunded_minor - ? WHERE id = ?`,
			settled.Amount.Minor, settled.PaymentID).Error
		if err != nil {
			return fmt.Errorf("release refund amount: %w", err)
		}
		return nil
	})
	if err != nil {
		return payment.Refund{}, err
	}
	return settled, nil
}
