package inventorytest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/microshop/microshop/services/inventory/internal/inventory"
)

// MemoryStore is an inventory.Store in memory, for tests of the layers
// above the store. It passes RunStoreContract, as the database stores do.
// It is safe for concurrent use: one mutex makes every call a transaction
// of its own. The zero value is not usable: call NewMemoryStore.
type MemoryStore struct {
	mu           sync.Mutex
	products     map[string]inventory.ProductWithStock // by SKU
	reservations map[string]inventory.Reservation      // by ID
	byOrder      map[string]string                     // reservation ID by order ID
}

var _ inventory.Store = (*MemoryStore)(nil)

// NewMemoryStore returns a MemoryStore holding catalog and no reservation.
func NewMemoryStore(catalog ...inventory.ProductWithStock) *MemoryStore {
	m := &MemoryStore{
		products:     map[string]inventory.ProductWithStock{},
		reservations: map[string]inventory.Reservation{},
		byOrder:      map[string]string{},
	}
	for _, p := range catalog {
		p.Stock.SKU = p.Product.SKU
		m.products[p.Product.SKU] = p
	}
	return m
}

// ListProducts implements inventory.Catalog. Query matches as the database
// stores match it: ASCII letters ignoring case, every other byte exactly.
func (m *MemoryStore) ListProducts(ctx context.Context, f inventory.Filter, afterSKU string, limit int) ([]inventory.ProductWithStock, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	query := lowerASCII(f.Query)
	var items []inventory.ProductWithStock
	for _, sku := range slices.Sorted(maps.Keys(m.products)) {
		p := m.products[sku]
		switch {
		case sku <= afterSKU,
			f.InStockOnly && p.Stock.Available <= 0,
			!strings.Contains(lowerASCII(p.Product.Name), query) && !strings.Contains(lowerASCII(p.Product.Description), query):
			continue
		}
		if len(items) == limit {
			break
		}
		items = append(items, p)
	}
	return items, nil
}

// Product implements inventory.Catalog.
func (m *MemoryStore) Product(ctx context.Context, sku string) (inventory.ProductWithStock, error) {
	if err := ctx.Err(); err != nil {
		return inventory.ProductWithStock{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.products[sku]
	if !ok {
		return inventory.ProductWithStock{}, inventory.ErrProductNotFound
	}
	return p, nil
}

// AdjustStock implements inventory.Catalog.
func (m *MemoryStore) AdjustStock(ctx context.Context, sku string, delta int64) (inventory.Stock, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Stock{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.products[sku]
	if !ok {
		return inventory.Stock{}, inventory.ErrProductNotFound
	}
	if p.Stock.Available+delta < 0 {
		return inventory.Stock{}, &inventory.InsufficientStockError{SKU: sku, Requested: -delta, Available: p.Stock.Available}
	}
	p.Stock.Available += delta
	m.products[sku] = p
	return p.Stock, nil
}

// CreateReservation implements inventory.Reservations. r.Lines must name
// distinct SKUs.
func (m *MemoryStore) CreateReservation(ctx context.Context, r inventory.Reservation) (inventory.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Reservation{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if id, ok := m.byOrder[r.OrderID]; ok {
		return clone(m.reservations[id]), nil
	}
	r = clone(r)
	slices.SortFunc(r.Lines, func(a, b inventory.Line) int { return cmp.Compare(a.SKU, b.SKU) })
	r.ExpiresAt, r.CreatedAt, r.UpdatedAt = storedTime(r.ExpiresAt), storedTime(r.CreatedAt), storedTime(r.UpdatedAt)
	for _, l := range r.Lines { // all lines or none: check them all first
		p, ok := m.products[l.SKU]
		if !ok {
			return inventory.Reservation{}, &inventory.UnknownProductError{SKU: l.SKU}
		}
		if p.Stock.Available < l.Quantity {
			return inventory.Reservation{}, &inventory.InsufficientStockError{SKU: l.SKU, Requested: l.Quantity, Available: p.Stock.Available}
		}
	}
	for _, l := range r.Lines {
		m.moveStock(l.SKU, -l.Quantity, l.Quantity)
	}
	m.reservations[r.ID] = r
	m.byOrder[r.OrderID] = r.ID
	return clone(r), nil
}

// Reservation implements inventory.Reservations.
func (m *MemoryStore) Reservation(ctx context.Context, orderID string) (inventory.Reservation, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Reservation{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byOrder[orderID]
	if !ok {
		return inventory.Reservation{}, inventory.ErrReservationNotFound
	}
	return clone(m.reservations[id]), nil
}

// CloseReservation implements inventory.Reservations.
func (m *MemoryStore) CloseReservation(ctx context.Context, id string, to inventory.Status, at time.Time) (inventory.Reservation, bool, error) {
	if err := ctx.Err(); err != nil {
		return inventory.Reservation{}, false, err
	}
	switch to {
	case inventory.StatusCommitted, inventory.StatusReleased, inventory.StatusExpired:
	default:
		return inventory.Reservation{}, false, fmt.Errorf("close reservation %s: cannot close to status %q", id, to)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.reservations[id]
	if !ok {
		return inventory.Reservation{}, false, inventory.ErrReservationNotFound
	}
	// What the change does to each line's stock: units leaving reserved,
	// units coming back to available.
	var unreserve, restock bool
	switch {
	case r.Status == inventory.StatusPending && to == inventory.StatusCommitted:
		unreserve = true // sold
	case r.Status == inventory.StatusPending:
		unreserve, restock = true, true
	case r.Status == inventory.StatusCommitted && to == inventory.StatusReleased:
		restock = true // a sale undone: reserved shrank at the commit
	default:
		return clone(r), false, nil
	}
	for _, l := range r.Lines { // as the databases' CHECK constraints refuse it
		if unreserve && m.products[l.SKU].Stock.Reserved < l.Quantity {
			return inventory.Reservation{}, false, fmt.Errorf("close reservation %s: fewer units of %s reserved than it holds", id, l.SKU)
		}
	}
	for _, l := range r.Lines {
		var reserved, available int64
		if unreserve {
			reserved = -l.Quantity
		}
		if restock {
			available = l.Quantity
		}
		m.moveStock(l.SKU, available, reserved)
	}
	r.Status, r.UpdatedAt = to, storedTime(at)
	m.reservations[id] = r
	return clone(r), true, nil
}

// OverdueReservations implements inventory.Reservations.
func (m *MemoryStore) OverdueReservations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var overdue []inventory.Reservation
	for _, r := range m.reservations {
		if r.Status == inventory.StatusPending && !r.ExpiresAt.After(now) {
			overdue = append(overdue, r)
		}
	}
	slices.SortFunc(overdue, func(a, b inventory.Reservation) int {
		return cmp.Or(a.ExpiresAt.Compare(b.ExpiresAt), cmp.Compare(a.ID, b.ID))
	})
	ids := []string{}
	for _, r := range overdue[:min(limit, len(overdue))] {
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// moveStock adds the deltas to sku's counters. The caller holds m.mu and has
// checked that neither goes below zero.
func (m *MemoryStore) moveStock(sku string, available, reserved int64) {
	p := m.products[sku]
	p.Stock.Available += available
	p.Stock.Reserved += reserved
	m.products[sku] = p
}

func clone(r inventory.Reservation) inventory.Reservation {
	r.Lines = slices.Clone(r.Lines)
	return r
}

// storedTime is t as the database stores keep it: UTC, to the microsecond.
func storedTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// lowerASCII lowercases the ASCII letters of s and nothing else.
func lowerASCII(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}
