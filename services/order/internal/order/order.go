// Package order is the order service's domain: orders, their lines and
// status history, and the use cases that create and read them (Service).
//
// It declares what it needs — Store, Checkout and Transactor — and imports no
// adapter; cmd/order wires the database store, the checkout saga and the
// HTTP API around it. Creating an order records it PENDING and starts its
// checkout saga in one transaction (Service.Create, through Transactor); the
// saga then confirms or cancels it.
package order

import (
	"context"
	"errors"
	"time"

	"github.com/microshop/microshop/pkg/money"
)

// Status is where an order stands in checkout.
type Status string

// The statuses an order moves through: PENDING, then CONFIRMED or CANCELLED.
const (
	StatusPending   Status = "PENDING"
	StatusConfirmed Status = "CONFIRMED"
	StatusCancelled Status = "CANCELLED"
)

// Order is a customer's order.
type Order struct {
	// ID is a UUIDv7 in canonical form, so ids sort roughly by creation time.
	ID string
	// CustomerID identifies who placed the order; the caller (the gateway)
	// authenticates the customer.
	CustomerID string
	Status     Status
	// Lines are the order's lines in the order the customer gave them.
	Lines []Line
	// Total is the sum of every line's quantity × unit price.
	Total money.Amount
	// CancelReason says why the order was cancelled; empty otherwise.
	CancelReason string
	// CreatedAt and UpdatedAt are UTC with microsecond precision, what both
	// databases store exactly.
	CreatedAt time.Time
	UpdatedAt time.Time
	// History lists every status the order has been in, oldest first. Lists
	// leave it nil.
	History []StatusChange
}

// Line is a quantity of one product.
type Line struct {
	// SKU is the product's stock-keeping unit, e.g. "TSHIRT-RED-M".
	SKU      string
	Quantity int64
	// UnitPrice is the catalog price at order time. The caller looks it up
	// (the gateway asks inventory) and the order keeps it, whatever the
	// catalog says later.
	UnitPrice money.Amount
}

// StatusChange is one entry of an order's history.
type StatusChange struct {
	Status Status
	// Reason says why, e.g. "order placed" or why it was cancelled.
	Reason string
	At     time.Time
}

// Idempotency is what a new order is stored under so that a retried request
// finds it: the client's key and a hash of the request.
type Idempotency struct {
	// Key is the client's Idempotency-Key, unique per customer.
	Key string
	// RequestHash fingerprints the request (see requestHash), so a retry can
	// be told apart from a different request reusing the key.
	RequestHash string
}

// Payment is what the checkout needs beyond the order to charge it. It is
// handed to the Checkout with a new order and never stored with it.
type Payment struct {
	// CardNumber is the PAN of one of the PSP simulator's test cards. A
	// real shop would hold a token from its payment provider instead, and
	// never see a card number (PCI DSS).
	CardNumber string
}

// Errors the use cases return; match them with errors.Is.
var (
	// ErrOrderNotFound: no such order, or it belongs to another customer.
	ErrOrderNotFound = errors.New("order not found")
	// ErrIdempotencyConflict: the customer already used the idempotency key
	// for a request with other lines or another card.
	ErrIdempotencyConflict = errors.New("idempotency key already used for a different request")
	// ErrInvalidCursor: the list cursor is not one List returned.
	ErrInvalidCursor = errors.New("invalid cursor")
)

// Store keeps orders. Implementations must be safe for concurrent use, by
// several processes sharing one database too.
type Store interface {
	// Insert stores o, its lines and its history under (o.CustomerID,
	// idem.Key), atomically, and returns o and idem.RequestHash. If the
	// customer already used idem.Key, Insert stores nothing and returns the
	// order stored under it and the hash it was stored with. Of concurrent
	// Inserts with one key, exactly one stores its order.
	Insert(ctx context.Context, o Order, idem Idempotency) (stored Order, requestHash string, err error)
	// Get returns the order with its lines and history, or ErrOrderNotFound.
	Get(ctx context.Context, id string) (Order, error)
	// List returns up to limit of the customer's orders with their lines but
	// no history, newest first (CreatedAt, then ID, descending), starting
	// after the position after; the zero Cursor starts at the newest.
	List(ctx context.Context, customerID string, after Cursor, limit int) ([]Order, error)
}

// Checkout starts the checkout saga of a new order: it reserves the stock,
// charges pay and confirms or cancels the order.
type Checkout interface {
	// Start starts the checkout of o, just stored, paid with pay. It only
	// writes (the saga's state, its first command, the OrderPlaced event);
	// they take effect when the transaction it belongs to commits.
	Start(ctx context.Context, o Order, pay Payment) error
}

// Transactor runs fn in one transaction of the order database, handing it
// the Store and the Checkout bound to that transaction: what fn writes
// through them commits together, or not at all (an error from fn rolls it
// all back and is returned). Once a transaction that started a checkout has
// committed, the checkout's messages are on their way.
type Transactor interface {
	Transact(ctx context.Context, fn func(Store, Checkout) error) error
}
