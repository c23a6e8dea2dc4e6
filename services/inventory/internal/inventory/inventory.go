// Package inventory is the inventory service's domain: the product catalog,
// the stock of each product and reservations of stock for orders.
//
// Stock is split in two counters. Available can be reserved; Reserved is held
// for orders whose checkout has not finished. A reservation moves quantities
// from available to reserved, all lines or none, and then ends one way:
//
//	PENDING ──Commit──▶ COMMITTED   the items are sold: reserved shrinks
//	   │                    │
//	   │                 Release    the sale is undone: back to available
//	   │                    ▼
//	   ├─────Release──▶ RELEASED    the checkout failed: back to available
//	   └─ExpireStale──▶ EXPIRED     nobody decided in time: back to available
//
// A sale can be undone because the checkout saga may give up on its commit
// step while the commit still lands; it then releases the reservation of an
// order it cancels and never confirmed (see Service.Release). RELEASED and
// EXPIRED are final: a Commit after them is refused, so no unit is sold twice.
//
// Of concurrent Commit, Release and ExpireStale calls on a reservation,
// exactly one takes it out of PENDING and at most one out of COMMITTED, on
// every replica: the Store changes a reservation's status only while it is
// still the status the change starts from, and stock only with conditional
// updates, so no product is ever oversold or given back twice (available and
// reserved never go below zero; the database refuses it too).
package inventory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/pkg/money"
)

// Product is an item of the catalog.
type Product struct {
	// SKU identifies the product: 1 to 64 characters of A–Z, 0–9 and '-',
	// e.g. "MUG-CLASSIC".
	SKU string
	// Name is what the storefront shows, e.g. "Classic Mug".
	Name string
	// Description is a sentence or two about the product.
	Description string
	// Price is the unit price.
	Price money.Amount
	// ImageRef is the path of the product's picture, e.g. "/images/MUG-CLASSIC.svg".
	ImageRef string
}

// Stock is how many units of a product there are.
type Stock struct {
	// SKU is the product's.
	SKU string
	// Available is how many units can be reserved; never negative.
	Available int64
	// Reserved is how many units pending reservations hold; never negative.
	Reserved int64
}

// ProductWithStock is a product and its stock, as the catalog lists them.
type ProductWithStock struct {
	Product Product
	// Stock.SKU is Product.SKU.
	Stock Stock
}

// Filter narrows ListProducts. The zero value lists every product.
type Filter struct {
	// Query, if not empty, keeps the products whose name or description
	// contains it, ignoring the case of ASCII letters (other characters must
	// match exactly, on SQLite and Postgres alike). At most MaxQueryLength
	// characters of UTF-8 without control characters.
	Query string
	// InStockOnly keeps the products with at least one unit available.
	InStockOnly bool
}

// Line is one product and quantity of a reservation.
type Line struct {
	// SKU names the product.
	SKU string
	// Quantity is how many units, from 1 to MaxLineQuantity.
	Quantity int64
}

// Status is where a reservation is in its life; see the package doc.
type Status string

// The statuses of a reservation. PENDING may become any other; COMMITTED
// may become RELEASED; RELEASED and EXPIRED never change.
const (
	StatusPending   Status = "PENDING"
	StatusCommitted Status = "COMMITTED"
	StatusReleased  Status = "RELEASED"
	StatusExpired   Status = "EXPIRED"
)

// Reservation is stock held for one order.
type Reservation struct {
	// ID is a time-ordered UUID (version 7).
	ID string
	// OrderID is the order the stock is held for; one reservation per order.
	OrderID string
	// Lines are sorted by SKU, one per product.
	Lines []Line
	// Status is PENDING until Commit, Release or ExpireStale closes it; a
	// COMMITTED reservation may still be released.
	Status Status
	// ExpiresAt is when a PENDING reservation becomes eligible for
	// ExpireStale. Commit still succeeds after it until ExpireStale has run.
	ExpiresAt time.Time
	// CreatedAt is when Reserve made the reservation.
	CreatedAt time.Time
	// UpdatedAt is when the status last changed.
	UpdatedAt time.Time
}

// Limits of the use cases' inputs.
const (
	// MaxPageSize is the largest limit ListProducts accepts.
	MaxPageSize = 100
	// MaxQueryLength is the longest Filter.Query, in characters.
	MaxQueryLength = 100
	// MaxLines is how many lines a reservation may have.
	MaxLines = 50
	// MaxLineQuantity is the largest quantity of one line.
	MaxLineQuantity = 1000
	// MaxStockAdjustment is the largest |delta| AdjustStock accepts.
	MaxStockAdjustment = 1_000_000
	// maxSKULength and maxOrderIDLength bound identifiers.
	maxSKULength     = 64
	maxOrderIDLength = 100
)

// Errors the use cases return, matched with errors.Is.
var (
	// ErrProductNotFound: no product has the SKU asked for.
	ErrProductNotFound = errors.New("product not found")
	// ErrUnknownProduct: a reservation line names a product the catalog does
	// not have. The error is an *UnknownProductError naming it.
	ErrUnknownProduct = errors.New("unknown product")
	// ErrInsufficientStock: not enough units are available. The error is an
	// *InsufficientStockError naming the product.
	ErrInsufficientStock = errors.New("insufficient stock")
	// ErrInvalidCursor: the cursor given to ListProducts is not one it returned.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrReservationNotFound: no reservation exists for the order.
	ErrReservationNotFound = errors.New("reservation not found")
	// ErrReservationClosed: Commit on a reservation already released or expired.
	ErrReservationClosed = errors.New("reservation is released or expired")
)

// UnknownProductError is ErrUnknownProduct for one SKU.
type UnknownProductError struct {
	SKU string
}

func (e *UnknownProductError) Error() string { return fmt.Sprintf("unknown product %s", e.SKU) }

// Unwrap makes errors.Is(err, ErrUnknownProduct) hold.
func (e *UnknownProductError) Unwrap() error { return ErrUnknownProduct }

// InsufficientStockError is ErrInsufficientStock for one SKU.
type InsufficientStockError struct {
	SKU string
	// Requested is how many units were asked for (or removed, for AdjustStock).
	Requested int64
	// Available is how many units were available when the request failed.
	Available int64
}

func (e *InsufficientStockError) Error() string {
	return fmt.Sprintf("insufficient stock of %s: %d requested, %d available", e.SKU, e.Requested, e.Available)
}

// Unwrap makes errors.Is(err, ErrInsufficientStock) hold.
func (e *InsufficientStockError) Unwrap() error { return ErrInsufficientStock }

// FieldError is one invalid input of a use case.
type FieldError struct {
	// Field is the input's path, e.g. "lines[0].quantity".
	Field string
	// Message says what is wrong with it.
	Message string
}

// ValidationError lists every invalid input of a call; the call changed nothing.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, f := range e.Errors {
		msgs[i] = f.Field + " " + f.Message
	}
	return "invalid input: " + strings.Join(msgs, "; ")
}

// Store keeps the catalog, stock and reservations. Its methods are safe for
// concurrent use, from any number of replicas sharing the database.
type Store interface {
	Catalog
	Reservations
}

// Catalog reads products and changes available stock.
type Catalog interface {
	// ListProducts returns at most limit products matching f whose SKU sorts
	// after afterSKU (byte order; "" starts at the beginning), ordered by SKU.
	ListProducts(ctx context.Context, f Filter, afterSKU string, limit int) ([]ProductWithStock, error)
	// Product returns one product, or ErrProductNotFound.
	Product(ctx context.Context, sku string) (ProductWithStock, error)
	// AdjustStock adds delta to the product's available units and returns the
	// new stock: ErrProductNotFound, or an *InsufficientStockError when
	// available would go below zero (nothing changes then).
	AdjustStock(ctx context.Context, sku string, delta int64) (Stock, error)
}

// Reservations creates and closes reservations, moving stock accordingly.
type Reservations interface {
	// CreateReservation stores r, a PENDING reservation, and moves its lines'
	// quantities from available to reserved, in one transaction: all lines
	// or none. It fails with an *UnknownProductError or an
	// *InsufficientStockError for the first line (by SKU) that cannot be
	// reserved. If a reservation for r.OrderID exists, it returns that one
	// unchanged and changes nothing.
	CreateReservation(ctx context.Context, r Reservation) (Reservation, error)
	// Reservation returns the reservation for orderID, or ErrReservationNotFound.
	Reservation(ctx context.Context, orderID string) (Reservation, error)
	// CloseReservation changes the status of reservation id to to at time
	// at, and its stock with it, in one transaction, when its status allows:
	//
	//   - PENDING to COMMITTED: the quantities leave reserved (sold);
	//   - PENDING to RELEASED or EXPIRED: they move from reserved back to
	//     available;
	//   - COMMITTED to RELEASED: they go back to available (the sale is
	//     undone; reserved already shrank at the commit).
	//
	// It returns the reservation as it now is and whether this call changed
	// it; from any other status nothing changes. Each change is conditional
	// on the status it starts from, so of concurrent calls on any number of
	// replicas exactly one takes a reservation out of PENDING and at most one
	// out of COMMITTED. ErrReservationNotFound if there is no such reservation.
	CloseReservation(ctx context.Context, id string, to Status, at time.Time) (Reservation, bool, error)
	// OverdueReservations returns the IDs of at most limit PENDING
	// reservations that expire at or before now, earliest first.
	OverdueReservations(ctx context.Context, now time.Time, limit int) ([]string, error)
}
