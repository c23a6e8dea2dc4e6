package inventory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// expireBatch is how many overdue reservations ExpireStale reads at a time.
const expireBatch = 100

// Service holds the inventory's use cases. It is safe for concurrent use, and
// for use by several replicas sharing one database: correctness comes from
// the Store's transactions and conditional updates, not from locks here.
type Service struct {
	store Store
	now   func() time.Time
	ttl   time.Duration
}

// NewService returns a Service keeping its data in store. now is the clock
// (time.Now in production); ttl is how long a reservation stays PENDING
// before ExpireStale may expire it, and must be positive.
func NewService(store Store, now func() time.Time, ttl time.Duration) *Service {
	return &Service{store: store, now: now, ttl: ttl}
}

// WithStore returns a Service with s's clock and TTL that keeps its data in
// store. It is how the use cases run inside a transaction that the caller
// owns: pass a Store bound to that transaction (see db.Store.InTx), and
// Reserve, Commit and Release apply their effect, with the same guarantees,
// when and only when the caller's transaction commits.
func (s *Service) WithStore(store Store) *Service {
	return &Service{store: store, now: s.now, ttl: s.ttl}
}

// ListProducts returns a page of at most limit (1 to MaxPageSize) products
// matching f, ordered by SKU. cursor is "" for the first page, then the next
// cursor of the previous page; next is "" after the last page. A cursor the
// service did not return fails with ErrInvalidCursor.
func (s *Service) ListProducts(ctx context.Context, f Filter, limit int, cursor string) (items []ProductWithStock, next string, err error) {
	var invalid []FieldError
	if limit < 1 || limit > MaxPageSize {
		invalid = append(invalid, FieldError{"limit", fmt.Sprintf("must be from 1 to %d", MaxPageSize)})
	}
	if msg := checkText(f.Query, MaxQueryLength); msg != "" {
		invalid = append(invalid, FieldError{"query", msg})
	}
	if invalid != nil {
		return nil, "", &ValidationError{Errors: invalid}
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	// One more than asked tells whether another page follows.
	items, err = s.store.ListProducts(ctx, f, after, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("list products: %w", err)
	}
	if len(items) > limit {
		items = items[:limit]
		next = encodeCursor(items[limit-1].Product.SKU)
	}
	return items, next, nil
}

// GetProduct returns the product sku, or ErrProductNotFound.
func (s *Service) GetProduct(ctx context.Context, sku string) (ProductWithStock, error) {
	if !validSKU(sku) {
		return ProductWithStock{}, fmt.Errorf("get product %q: %w", sku, ErrProductNotFound)
	}
	p, err := s.store.Product(ctx, sku)
	if err != nil {
		return ProductWithStock{}, fmt.Errorf("get product %s: %w", sku, err)
	}
	return p, nil
}

// AdjustStock adds delta (non-zero, at most MaxStockAdjustment either way)
// to the product's available units: a restock or a shrink, for
// administrators. Reserved units are untouched. It fails with
// ErrProductNotFound, or with an *InsufficientStockError when available would
// go below zero.
func (s *Service) AdjustStock(ctx context.Context, sku string, delta int64) (Stock, error) {
	if delta == 0 || delta < -MaxStockAdjustment || delta > MaxStockAdjustment {
		return Stock{}, &ValidationError{Errors: []FieldError{{"delta",
			fmt.Sprintf("must be a non-zero integer from %d to %d", -MaxStockAdjustment, MaxStockAdjustment)}}}
	}
	if !validSKU(sku) {
		return Stock{}, fmt.Errorf("adjust stock of %q: %w", sku, ErrProductNotFound)
	}
	st, err := s.store.AdjustStock(ctx, sku, delta)
	if err != nil {
		return Stock{}, fmt.Errorf("adjust stock of %s: %w", sku, err)
	}
	return st, nil
}

// Reserve holds stock for orderID: every line's quantity moves from
// available to reserved, or none does. The reservation is PENDING and
// expires after the service's TTL unless committed or released first.
//
// It fails with a *ValidationError, an *UnknownProductError or an
// *InsufficientStockError naming the product. Reserving again for the same
// order returns the existing reservation unchanged, whatever its lines and
// status, so a redelivered command is harmless.
func (s *Service) Reserve(ctx context.Context, orderID string, lines []Line) (Reservation, error) {
	if err := validateReservation(orderID, lines); err != nil {
		return Reservation{}, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve stock for order %s: %w", orderID, err)
	}
	now := s.now()
	r := Reservation{
		ID:        id.String(),
		OrderID:   orderID,
		Lines:     slices.SortedFunc(slices.Values(lines), func(a, b Line) int { return cmp.Compare(a.SKU, b.SKU) }),
		Status:    StatusPending,
		ExpiresAt: now.Add(s.ttl),
		CreatedAt: now,
		UpdatedAt: now,
	}
	r, err = s.store.CreateReservation(ctx, r)
	if err != nil {
		return Reservation{}, fmt.Errorf("reserve stock for order %s: %w", orderID, err)
	}
	return r, nil
}

// Commit marks the order's reservation as sold: PENDING becomes COMMITTED
// and its units leave reserved. Committing again succeeds without effect. It
// fails with ErrReservationNotFound, or ErrReservationClosed when the
// reservation was released (even after a commit) or has expired: its units
// may be held by other orders by now.
func (s *Service) Commit(ctx context.Context, orderID string) (Reservation, error) {
	r, err := s.settle(ctx, orderID, StatusCommitted)
	if err != nil {
		return Reservation{}, fmt.Errorf("commit reservation for order %s: %w", orderID, err)
	}
	if r.Status != StatusCommitted {
		return Reservation{}, fmt.Errorf("commit reservation for order %s: %w (it is %s)", orderID, ErrReservationClosed, r.Status)
	}
	return r, nil
}

// Release gives the order's units back to available stock: a PENDING
// reservation becomes RELEASED, and so does a COMMITTED one, whose sale is
// undone. Releasing a reservation already released or expired succeeds
// without effect, returning it as it is. It fails with
// ErrReservationNotFound.
//
// Undoing a sale is right in the checkout saga, the only caller: it releases
// stock only to compensate a checkout it did not complete, so a COMMITTED
// reservation here is a commit that landed after the saga stopped waiting
// for it, of an order that is being cancelled and was never confirmed. A
// commit that arrives after the release finds the reservation RELEASED and
// fails with ErrReservationClosed, so no unit is sold twice.
func (s *Service) Release(ctx context.Context, orderID string) (Reservation, error) {
	r, err := s.settle(ctx, orderID, StatusReleased)
	if err != nil {
		return Reservation{}, fmt.Errorf("release reservation for order %s: %w", orderID, err)
	}
	return r, nil
}

// Reservation returns the order's reservation as it is, whatever its
// status, or ErrReservationNotFound.
func (s *Service) Reservation(ctx context.Context, orderID string) (Reservation, error) {
	r, err := s.store.Reservation(ctx, orderID)
	if err != nil {
		return Reservation{}, fmt.Errorf("get reservation for order %s: %w", orderID, err)
	}
	return r, nil
}

// settle moves the order's reservation to status (COMMITTED or RELEASED)
// if its status allows it, as Store.CloseReservation says, and returns it as
// it then is: the caller judges the outcome by its status, whoever changed it.
func (s *Service) settle(ctx context.Context, orderID string, status Status) (Reservation, error) {
	r, err := s.store.Reservation(ctx, orderID)
	if err != nil || !canSettle(r.Status, status) {
		return r, err
	}
	// The store checks the status again, in the transaction that changes it.
	r, _, err = s.store.CloseReservation(ctx, r.ID, status, s.now())
	return r, err
}

// canSettle reports whether a reservation in status from may move to to:
// from PENDING to anything, and from COMMITTED to RELEASED.
func canSettle(from, to Status) bool {
	return from == StatusPending || (from == StatusCommitted && to == StatusReleased)
}

// ExpireStale expires every PENDING reservation whose ExpiresAt has passed,
// returning its units to available, and reports how many it expired. Each
// reservation is expired in its own transaction, and only if still PENDING,
// so it races safely with Commit, Release and other replicas' ExpireStale.
// On error, the reservations expired so far stay expired.
func (s *Service) ExpireStale(ctx context.Context) (int, error) {
	now := s.now()
	expired := 0
	for {
		// Every ID listed leaves PENDING below, so each round makes progress.
		ids, err := s.store.OverdueReservations(ctx, now, expireBatch)
		if err != nil {
			return expired, fmt.Errorf("expire stale reservations: %w", err)
		}
		for _, id := range ids {
			_, closed, err := s.store.CloseReservation(ctx, id, StatusExpired, now)
			if err != nil {
				return expired, fmt.Errorf("expire reservation %s: %w", id, err)
			}
			if closed {
				expired++
			}
		}
		if len(ids) < expireBatch {
			return expired, nil
		}
	}
}

func validateReservation(orderID string, lines []Line) error {
	var invalid []FieldError
	if orderID == "" {
		invalid = append(invalid, FieldError{"order_id", "is required"})
	} else if msg := checkText(orderID, maxOrderIDLength); msg != "" {
		invalid = append(invalid, FieldError{"order_id", msg})
	}
	switch {
	case len(lines) == 0:
		invalid = append(invalid, FieldError{"lines", "must hold at least one line"})
	case len(lines) > MaxLines:
		invalid = append(invalid, FieldError{"lines", fmt.Sprintf("must hold at most %d lines", MaxLines)})
	default:
		seen := make(map[string]bool, len(lines))
		for i, l := range lines {
			field := "lines[" + strconv.Itoa(i) + "]"
			switch {
			case l.SKU == "":
				invalid = append(invalid, FieldError{field + ".sku", "is required"})
			case !validSKU(l.SKU):
				invalid = append(invalid, FieldError{field + ".sku", fmt.Sprintf("must be 1 to %d characters of A-Z, 0-9 and -", maxSKULength)})
			case seen[l.SKU]:
				invalid = append(invalid, FieldError{field + ".sku", "appears in an earlier line"})
			}
			seen[l.SKU] = true
			if l.Quantity < 1 || l.Quantity > MaxLineQuantity {
				invalid = append(invalid, FieldError{field + ".quantity", fmt.Sprintf("must be from 1 to %d", MaxLineQuantity)})
			}
		}
	}
	if invalid != nil {
		return &ValidationError{Errors: invalid}
	}
	return nil
}

// validSKU reports whether sku has the form of a SKU; no other can exist, so
// looking one up is pointless.
func validSKU(sku string) bool {
	if sku == "" || len(sku) > maxSKULength {
		return false
	}
	for _, c := range []byte(sku) {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// checkText returns what is wrong with a free-text input, or "": it must be
// UTF-8 of at most maxLen characters without control characters (which
// Postgres may refuse, and nobody types).
func checkText(s string, maxLen int) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8"
	}
	if utf8.RuneCountInString(s) > maxLen {
		return fmt.Sprintf("must be at most %d characters", maxLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}
