package order

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
)

// Service holds the order use cases. It is safe for concurrent use; every
// method's ctx bounds its calls to the Store and the Transactor.
type Service struct {
	store     Store
	checkouts Transactor
	now       func() time.Time
	cardKey   []byte
}

// NewService returns a Service reading orders from store, placing new ones
// and starting their checkout through checkouts, and reading the time from
// now (time.Now in production).
func NewService(store Store, checkouts Transactor, now func() time.Time, opts ...Option) *Service {
	s := &Service{store: store, checkouts: checkouts, now: now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Option configures a Service.
type Option func(*Service)

// WithCardKey sets the HMAC key under which the card number enters a
// request's idempotency fingerprint. Every replica must share it, and it
// must not change while retries of earlier requests may arrive. Without it
// the HMAC key is empty: the fingerprint still never holds the card in
// clear, but anyone with the database could test card numbers against it.
func WithCardKey(key []byte) Option {
	return func(s *Service) { s.cardKey = key }
}

// CreateRequest asks for a new order.
type CreateRequest struct {
	CustomerID string
	// IdempotencyKey is the client's key for this request: retrying with the
	// same key, lines (in any order) and card returns the first order
	// instead of creating another.
	IdempotencyKey string
	// Lines carry the unit prices the caller read from the catalog.
	Lines []Line
	// CardNumber pays for the order: 12 to 19 digits passing the Luhn
	// check. It is part of the request's fingerprint, keyed (see
	// WithCardKey): the same key with another card is a conflict. It is
	// never stored with the order nor returned: it goes only to the
	// checkout (see Payment).
	CardNumber string
}

// Create places a PENDING order and starts its checkout, in one
// transaction, and reports created=true. A retry (same customer, key, set of
// lines and card — prices may differ) returns the order the key already
// made, as it is now, with created=false. Errors: *ValidationError naming
// every invalid field, ErrIdempotencyConflict when the key was used for other
// lines or another card.
func (s *Service) Create(ctx context.Context, req CreateRequest) (o Order, created bool, err error) {
	total, err := req.validate()
	if err != nil {
		return Order{}, false, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Order{}, false, fmt.Errorf("create order: new id: %w", err)
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	o = Order{
		ID:         id.String(),
		CustomerID: req.CustomerID,
		Status:     StatusPending,
		Lines:      slices.Clone(req.Lines),
		Total:      total,
		CreatedAt:  now,
		UpdatedAt:  now,
		History:    []StatusChange{{Status: StatusPending, Reason: "order placed", At: now}},
	}
	idem := Idempotency{Key: req.IdempotencyKey, RequestHash: requestHash(s.cardKey, req)}

	var (
		stored     Order
		storedHash string
	)
	err = s.checkouts.Transact(ctx, func(store Store, checkout Checkout) error {
		var err error
		stored, storedHash, err = store.Insert(ctx, o, idem)
		if err != nil || stored.ID != o.ID {
			return err // a failure, or a retry: its checkout started with it
		}
		return checkout.Start(ctx, o, Payment{CardNumber: req.CardNumber})
	})
	switch {
	case err != nil:
		return Order{}, false, fmt.Errorf("create order: %w", err)
	case stored.ID == o.ID:
		// Read it back: the checkout's first step is in the history now.
		created, err := s.store.Get(ctx, o.ID)
		if err != nil {
			return Order{}, false, fmt.Errorf("create order: %w", err)
		}
		return created, true, nil
	case storedHash != idem.RequestHash:
		return Order{}, false, ErrIdempotencyConflict
	default:
		return stored, false, nil
	}
}

// Get returns the order with its history. customerID "" reads any
// customer's order (for operators); otherwise another customer's order is
// ErrOrderNotFound, so that its existence is not revealed.
func (s *Service) Get(ctx context.Context, id, customerID string) (Order, error) {
	if !validID(id) {
		return Order{}, ErrOrderNotFound
	}
	o, err := s.store.Get(ctx, id)
	if err != nil {
		return Order{}, fmt.Errorf("get order %s: %w", id, err)
	}
	if customerID != "" && o.CustomerID != customerID {
		return Order{}, ErrOrderNotFound
	}
	return o, nil
}

// List returns a page of up to limit (1..MaxListLimit) of the customer's
// orders, newest first, with lines and without history. cursor is "" for the
// first page, then the next cursor of the page before; next is "" after the
// last page. Errors: *ValidationError for customer_id or limit,
// ErrInvalidCursor.
func (s *Service) List(ctx context.Context, customerID string, limit int, cursor string) (orders []Order, next string, err error) {
	var errs fieldErrors
	if msg := checkCustomerID(customerID); msg != "" {
		errs.add("customer_id", msg)
	}
	if limit < 1 || limit > MaxListLimit {
		errs.add("limit", fmt.Sprintf("must be from 1 to %d", MaxListLimit))
	}
	if err := errs.err(); err != nil {
		return nil, "", err
	}
	after, err := parseCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	// One more than asked tells whether another page follows.
	orders, err = s.store.List(ctx, customerID, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	if len(orders) > limit {
		orders = orders[:limit]
		next = cursorAfter(orders[limit-1]).encode()
	}
	return orders, next, nil
}
