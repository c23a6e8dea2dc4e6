// Package ordertest helps test code built on the order domain: an in-memory
// order.Store, a settable clock, and RunStoreContract, the suite every
// order.Store must pass (the in-memory one included, so it can stand in for
// a database in tests of the layers above).
package ordertest

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/microshop/microshop/pkg/clocktest"
	"github.com/microshop/microshop/services/order/internal/order"
)

// TestCard is the PSP simulator's card that always succeeds, for requests
// whose card does not matter.
const TestCard = "4242424242424242"

// testPayment pays the orders the contract inserts.
var testPayment = order.Payment{CardNumber: TestCard}

// MemoryStore is an order.Store in memory. The zero value is not usable:
// call NewMemoryStore. It is safe for concurrent use.
type MemoryStore struct {
	mu     sync.Mutex
	orders map[string]order.Order // by ID
	keys   map[customerKey]storedKey
}

type customerKey struct{ customerID, key string }

type storedKey struct{ orderID, requestHash string }

var _ order.Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{orders: map[string]order.Order{}, keys: map[customerKey]storedKey{}}
}

// Insert implements order.Store. It starts no checkout: pay is dropped.
func (m *MemoryStore) Insert(ctx context.Context, o order.Order, idem order.Idempotency, _ order.Payment) (order.Order, string, error) {
	if err := ctx.Err(); err != nil {
		return order.Order{}, "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	k := customerKey{o.CustomerID, idem.Key}
	if s, used := m.keys[k]; used {
		return clone(m.orders[s.orderID]), s.requestHash, nil
	}
	m.orders[o.ID] = clone(o)
	m.keys[k] = storedKey{orderID: o.ID, requestHash: idem.RequestHash}
	return clone(o), idem.RequestHash, nil
}

// Get implements order.Store.
func (m *MemoryStore) Get(ctx context.Context, id string) (order.Order, error) {
	if err := ctx.Err(); err != nil {
		return order.Order{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	o, ok := m.orders[id]
	if !ok {
		return order.Order{}, order.ErrOrderNotFound
	}
	return clone(o), nil
}

// List implements order.Store.
func (m *MemoryStore) List(ctx context.Context, customerID string, after order.Cursor, limit int) ([]order.Order, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var page []order.Order
	for _, o := range m.orders {
		if o.CustomerID == customerID && (after.IsZero() || newerFirst(after, position(o)) < 0) {
			page = append(page, o)
		}
	}
	slices.SortFunc(page, func(a, b order.Order) int { return newerFirst(position(a), position(b)) })
	page = page[:min(limit, len(page))]
	for i, o := range page {
		o = clone(o)
		o.History = nil
		page[i] = o
	}
	return page, nil
}

func position(o order.Order) order.Cursor { return order.Cursor{CreatedAt: o.CreatedAt, ID: o.ID} }

// newerFirst orders positions as lists do: CreatedAt, then ID, descending.
func newerFirst(a, b order.Cursor) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(b.ID, a.ID)
}

func clone(o order.Order) order.Order {
	o.Lines = slices.Clone(o.Lines)
	o.History = slices.Clone(o.History)
	return o
}

// Clock is clocktest.Clock, under the name order's tests used before it had
// one home in pkg/clocktest.
type Clock = clocktest.Clock

// NewClock returns a Clock reading t.
func NewClock(t time.Time) *Clock { return clocktest.New(t) }
