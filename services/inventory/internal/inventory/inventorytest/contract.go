// Package inventorytest holds the contract of inventory.Store as a test
// suite, to run against every implementation of the port.
package inventorytest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
)

// NewStore returns a store on a fresh database holding catalog and no other
// product.
type NewStore func(t *testing.T, catalog ...inventory.ProductWithStock) inventory.Store

// Product returns a catalog entry for tests: sku, priced 9.99 EUR, with
// available units and none reserved.
func Product(sku string, available int64) inventory.ProductWithStock {
	return inventory.ProductWithStock{
		Product: inventory.Product{
			SKU:         sku,
			Name:        "Product " + sku,
			Description: "A test product.",
			Price:       money.Amount{Minor: 999, Currency: "EUR"},
			ImageRef:    "/images/" + sku + ".svg",
		},
		Stock: inventory.Stock{SKU: sku, Available: available},
	}
}

// base is the time the contract's reservations are made at.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// pending returns a PENDING reservation n (ID "r-n", order "o-n") made at
// base that expires after ttl.
func pending(n int, ttl time.Duration, lines ...inventory.Line) inventory.Reservation {
	return inventory.Reservation{
		ID:        fmt.Sprintf("r-%02d", n),
		OrderID:   fmt.Sprintf("o-%02d", n),
		Lines:     lines,
		Status:    inventory.StatusPending,
		ExpiresAt: base.Add(ttl),
		CreatedAt: base,
		UpdatedAt: base,
	}
}

// RunStoreContract tests that the stores newStore returns keep the promises
// of inventory.Store, concurrency included.
func RunStoreContract(t *testing.T, newStore NewStore) {
	t.Run("Product", func(t *testing.T) { testProduct(t, newStore) })
	t.Run("ListProducts", func(t *testing.T) { testListProducts(t, newStore) })
	t.Run("AdjustStock", func(t *testing.T) { testAdjustStock(t, newStore) })
	t.Run("CreateReservation", func(t *testing.T) { testCreateReservation(t, newStore) })
	t.Run("CloseReservation", func(t *testing.T) { testCloseReservation(t, newStore) })
	t.Run("OverdueReservations", func(t *testing.T) { testOverdueReservations(t, newStore) })
	t.Run("concurrent reservations never oversell", func(t *testing.T) { testConcurrentReservations(t, newStore) })
	t.Run("concurrent reservations for one order make one", func(t *testing.T) { testConcurrentSameOrder(t, newStore) })
	t.Run("concurrent closes: one wins, a release may undo a commit", func(t *testing.T) { testConcurrentCloses(t, newStore) })
}

func testProduct(t *testing.T, newStore NewStore) {
	want := inventory.ProductWithStock{
		Product: inventory.Product{
			SKU:         "MUG-CLASSIC",
			Name:        "Classic Mug",
			Description: "White 330 ml stoneware mug.",
			Price:       money.Amount{Minor: 1290, Currency: "EUR"},
			ImageRef:    "/images/MUG-CLASSIC.svg",
		},
		Stock: inventory.Stock{SKU: "MUG-CLASSIC", Available: 7, Reserved: 2},
	}
	s := newStore(t, want, Product("OTHER", 1))

	got, err := s.Product(t.Context(), "MUG-CLASSIC")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Product mismatch (-want +got):\n%s", diff)
	}
	if _, err := s.Product(t.Context(), "NOPE"); !errors.Is(err, inventory.ErrProductNotFound) {
		t.Errorf("Product(NOPE) error = %v, want ErrProductNotFound", err)
	}
}

func testListProducts(t *testing.T, newStore NewStore) {
	entry := func(sku, name, description string, available int64) inventory.ProductWithStock {
		p := Product(sku, available)
		p.Product.Name, p.Product.Description = name, description
		return p
	}
	// Byte order is MUG-A < MUG-B < MUG1 < MUGA < TEE ('-' < '1' < 'A');
	// natural-language collations put MUGA right after MUG-A.
	s := newStore(t,
		entry("TEE", "T-Shirt", "Organic COTTON", 3),
		entry("MUGA", "Muga", "under_score", 0),
		entry("MUG1", "CRÈME mug", `back\slash`, 2),
		entry("MUG-B", "Big MUG", "plain", 1),
		entry("MUG-A", "Mug A", "holds 100% coffee", 5),
	)
	tests := []struct {
		name   string
		filter inventory.Filter
		after  string
		limit  int
		want   []string
	}{
		{"all, in byte order of SKU", inventory.Filter{}, "", 10, []string{"MUG-A", "MUG-B", "MUG1", "MUGA", "TEE"}},
		{"limited", inventory.Filter{}, "", 2, []string{"MUG-A", "MUG-B"}},
		{"after a SKU", inventory.Filter{}, "MUG-B", 2, []string{"MUG1", "MUGA"}},
		{"after the last", inventory.Filter{}, "TEE", 10, nil},
		{"after a SKU that does not exist", inventory.Filter{}, "MUG0", 10, []string{"MUG1", "MUGA", "TEE"}},
		{"query in names, any ASCII case", inventory.Filter{Query: "mUg"}, "", 10, []string{"MUG-A", "MUG-B", "MUG1", "MUGA"}},
		{"query in descriptions", inventory.Filter{Query: "cotton"}, "", 10, []string{"TEE"}},
		{"percent is literal", inventory.Filter{Query: "%"}, "", 10, []string{"MUG-A"}},
		{"underscore is literal", inventory.Filter{Query: "_"}, "", 10, []string{"MUGA"}},
		{"backslash is literal", inventory.Filter{Query: `\`}, "", 10, []string{"MUG1"}},
		{"non-ASCII letters match exactly", inventory.Filter{Query: "CRÈME"}, "", 10, []string{"MUG1"}},
		{"non-ASCII letters keep their case", inventory.Filter{Query: "crème"}, "", 10, nil},
		{"no match", inventory.Filter{Query: "teapot"}, "", 10, nil},
		{"in stock only", inventory.Filter{InStockOnly: true}, "", 10, []string{"MUG-A", "MUG-B", "MUG1", "TEE"}},
		{"everything at once", inventory.Filter{Query: "MUG", InStockOnly: true}, "MUG-A", 1, []string{"MUG-B"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := s.ListProducts(t.Context(), tt.filter, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range items {
				got = append(got, p.Product.SKU)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ListProducts(%+v, after %q, %d) SKUs mismatch (-want +got):\n%s", tt.filter, tt.after, tt.limit, diff)
			}
		})
	}
	t.Run("items carry product and stock", func(t *testing.T) {
		items, err := s.ListProducts(t.Context(), inventory.Filter{}, "MUG-A", 1)
		if err != nil {
			t.Fatal(err)
		}
		want := []inventory.ProductWithStock{entry("MUG-B", "Big MUG", "plain", 1)}
		if diff := cmp.Diff(want, items); diff != "" {
			t.Errorf("ListProducts mismatch (-want +got):\n%s", diff)
		}
	})
}

func testAdjustStock(t *testing.T, newStore NewStore) {
	tests := []struct {
		name      string
		sku       string
		delta     int64
		want      inventory.Stock
		wantErr   error
		wantStock inventory.Stock
	}{
		{"restock", "A", 3, inventory.Stock{SKU: "A", Available: 8, Reserved: 2}, nil, inventory.Stock{SKU: "A", Available: 8, Reserved: 2}},
		{"shrink", "A", -2, inventory.Stock{SKU: "A", Available: 3, Reserved: 2}, nil, inventory.Stock{SKU: "A", Available: 3, Reserved: 2}},
		{"shrink to zero", "A", -5, inventory.Stock{SKU: "A", Available: 0, Reserved: 2}, nil, inventory.Stock{SKU: "A", Available: 0, Reserved: 2}},
		{"below zero, reserved units do not count", "A", -6, inventory.Stock{},
			&inventory.InsufficientStockError{SKU: "A", Requested: 6, Available: 5}, inventory.Stock{SKU: "A", Available: 5, Reserved: 2}},
		{"unknown product", "B", 1, inventory.Stock{}, inventory.ErrProductNotFound, inventory.Stock{SKU: "A", Available: 5, Reserved: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := Product("A", 5)
			a.Stock.Reserved = 2
			s := newStore(t, a)
			got, err := s.AdjustStock(t.Context(), tt.sku, tt.delta)
			if diff := cmp.Diff(tt.wantErr, err, EquateErrors); diff != "" {
				t.Errorf("AdjustStock(%s, %d) error mismatch (-want +got):\n%s", tt.sku, tt.delta, diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AdjustStock(%s, %d) mismatch (-want +got):\n%s", tt.sku, tt.delta, diff)
			}
			if diff := cmp.Diff(tt.wantStock, stockOf(t, s, "A")); diff != "" {
				t.Errorf("stock after AdjustStock mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func testCreateReservation(t *testing.T, newStore NewStore) {
	ttl := 15 * time.Minute
	t.Run("all lines", func(t *testing.T) {
		s := newStore(t, Product("A", 5), Product("B", 3))
		in := pending(1, ttl, inventory.Line{SKU: "B", Quantity: 3}, inventory.Line{SKU: "A", Quantity: 2})
		got, err := s.CreateReservation(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		want := in
		want.Lines = []inventory.Line{{SKU: "A", Quantity: 2}, {SKU: "B", Quantity: 3}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("CreateReservation mismatch (-want +got):\n%s", diff)
		}
		stored, err := s.Reservation(t.Context(), in.OrderID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, stored); diff != "" {
			t.Errorf("Reservation mismatch (-want +got):\n%s", diff)
		}
		wantStock := []inventory.Stock{{SKU: "A", Available: 3, Reserved: 2}, {SKU: "B", Available: 0, Reserved: 3}}
		if diff := cmp.Diff(wantStock, []inventory.Stock{stockOf(t, s, "A"), stockOf(t, s, "B")}); diff != "" {
			t.Errorf("stock mismatch (-want +got):\n%s", diff)
		}
	})

	failures := []struct {
		name    string
		lines   []inventory.Line
		wantErr error
	}{
		{"a line short", []inventory.Line{{SKU: "A", Quantity: 2}, {SKU: "B", Quantity: 4}},
			&inventory.InsufficientStockError{SKU: "B", Requested: 4, Available: 3}},
		{"the first line short", []inventory.Line{{SKU: "B", Quantity: 1}, {SKU: "A", Quantity: 6}},
			&inventory.InsufficientStockError{SKU: "A", Requested: 6, Available: 5}},
		{"an unknown product", []inventory.Line{{SKU: "A", Quantity: 1}, {SKU: "C", Quantity: 1}},
			&inventory.UnknownProductError{SKU: "C"}},
	}
	for _, tt := range failures {
		t.Run(tt.name+" fails all lines", func(t *testing.T) {
			s := newStore(t, Product("A", 5), Product("B", 3))
			in := pending(1, ttl, tt.lines...)
			_, err := s.CreateReservation(t.Context(), in)
			if diff := cmp.Diff(tt.wantErr, err, EquateErrors); diff != "" {
				t.Errorf("CreateReservation error mismatch (-want +got):\n%s", diff)
			}
			wantStock := []inventory.Stock{{SKU: "A", Available: 5}, {SKU: "B", Available: 3}}
			if diff := cmp.Diff(wantStock, []inventory.Stock{stockOf(t, s, "A"), stockOf(t, s, "B")}); diff != "" {
				t.Errorf("stock mismatch, want it untouched (-want +got):\n%s", diff)
			}
			if _, err := s.Reservation(t.Context(), in.OrderID); !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Errorf("Reservation after a failed CreateReservation: %v, want ErrReservationNotFound", err)
			}
		})
	}

	t.Run("same order again returns the first unchanged", func(t *testing.T) {
		s := newStore(t, Product("A", 5), Product("B", 3))
		first, err := s.CreateReservation(t.Context(), pending(1, ttl, inventory.Line{SKU: "A", Quantity: 1}))
		if err != nil {
			t.Fatal(err)
		}
		again := pending(2, 2*ttl, inventory.Line{SKU: "B", Quantity: 3})
		again.OrderID = first.OrderID
		got, err := s.CreateReservation(t.Context(), again)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, got); diff != "" {
			t.Errorf("second CreateReservation mismatch (-want first +got):\n%s", diff)
		}
		want := []inventory.Stock{{SKU: "A", Available: 4, Reserved: 1}, {SKU: "B", Available: 3}}
		if diff := cmp.Diff(want, []inventory.Stock{stockOf(t, s, "A"), stockOf(t, s, "B")}); diff != "" {
			t.Errorf("stock mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("unknown order", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Reservation(t.Context(), "nobody"); !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Errorf("Reservation(nobody) error = %v, want ErrReservationNotFound", err)
		}
	})
}

func testCloseReservation(t *testing.T, newStore NewStore) {
	const (
		committed = inventory.StatusCommitted
		released  = inventory.StatusReleased
		expired   = inventory.StatusExpired
	)
	// Stock of A and B, 5 and 3 units, around a reservation of 2 A and 1 B.
	var (
		held = []inventory.Stock{{SKU: "A", Available: 3, Reserved: 2}, {SKU: "B", Available: 2, Reserved: 1}}
		sold = []inventory.Stock{{SKU: "A", Available: 3}, {SKU: "B", Available: 2}}
		back = []inventory.Stock{{SKU: "A", Available: 5}, {SKU: "B", Available: 3}}
	)
	tests := []struct {
		name       string
		before     []inventory.Status // closes that succeed first, in order
		to         inventory.Status
		wantClosed bool
		wantStatus inventory.Status
		wantStock  []inventory.Stock
	}{
		{"PENDING to COMMITTED", nil, committed, true, committed, sold},
		{"PENDING to RELEASED", nil, released, true, released, back},
		{"PENDING to EXPIRED", nil, expired, true, expired, back},
		{"COMMITTED stays", []inventory.Status{committed}, committed, false, committed, sold},
		{"COMMITTED to RELEASED undoes the sale", []inventory.Status{committed}, released, true, released, back},
		{"COMMITTED does not expire", []inventory.Status{committed}, expired, false, committed, sold},
		{"RELEASED is final: commit", []inventory.Status{released}, committed, false, released, back},
		{"RELEASED is final: release", []inventory.Status{released}, released, false, released, back},
		{"RELEASED is final: expire", []inventory.Status{released}, expired, false, released, back},
		{"EXPIRED is final: commit", []inventory.Status{expired}, committed, false, expired, back},
		{"EXPIRED is final: release", []inventory.Status{expired}, released, false, expired, back},
		{"EXPIRED is final: expire", []inventory.Status{expired}, expired, false, expired, back},
		{"a sale undone is final: commit", []inventory.Status{committed, released}, committed, false, released, back},
		{"a sale undone is final: release", []inventory.Status{committed, released}, released, false, released, back},
		{"a sale undone is final: expire", []inventory.Status{committed, released}, expired, false, released, back},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, Product("A", 5), Product("B", 3))
			r, err := s.CreateReservation(t.Context(), pending(1, time.Minute, inventory.Line{SKU: "A", Quantity: 2}, inventory.Line{SKU: "B", Quantity: 1}))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(held, []inventory.Stock{stockOf(t, s, "A"), stockOf(t, s, "B")}); diff != "" {
				t.Fatalf("stock of the PENDING reservation mismatch (-want +got):\n%s", diff)
			}
			want := r
			for i, status := range tt.before {
				at := base.Add(time.Duration(i+1) * time.Hour)
				if _, closed, err := s.CloseReservation(t.Context(), r.ID, status, at); err != nil || !closed {
					t.Fatalf("close %s to %s = closed %t, %v; want closed, nil", want.Status, status, closed, err)
				}
				want.Status, want.UpdatedAt = status, at
			}

			at := base.Add(24 * time.Hour)
			got, closed, err := s.CloseReservation(t.Context(), r.ID, tt.to, at)
			if err != nil || closed != tt.wantClosed {
				t.Fatalf("close %s to %s = closed %t, %v; want closed %t, nil", want.Status, tt.to, closed, err, tt.wantClosed)
			}
			if closed {
				want.UpdatedAt = at
			}
			want.Status = tt.wantStatus
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("CloseReservation mismatch (-want +got):\n%s", diff)
			}
			stored, err := s.Reservation(t.Context(), r.OrderID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, stored); diff != "" {
				t.Errorf("stored reservation mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStock, []inventory.Stock{stockOf(t, s, "A"), stockOf(t, s, "B")}); diff != "" {
				t.Errorf("stock mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("unknown reservation", func(t *testing.T) {
		s := newStore(t)
		_, _, err := s.CloseReservation(t.Context(), "nope", inventory.StatusReleased, base)
		if !errors.Is(err, inventory.ErrReservationNotFound) {
			t.Errorf("CloseReservation(nope) error = %v, want ErrReservationNotFound", err)
		}
	})
}

func testOverdueReservations(t *testing.T, newStore NewStore) {
	s := newStore(t, Product("A", 10))
	for n, ttl := range []time.Duration{3 * time.Minute, time.Minute, 2 * time.Minute, 4 * time.Minute} {
		if _, err := s.CreateReservation(t.Context(), pending(n, ttl, inventory.Line{SKU: "A", Quantity: 1})); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CloseReservation(t.Context(), "r-02", inventory.StatusReleased, base); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		now   time.Time
		limit int
		want  []string
	}{
		{"none due", base.Add(time.Minute - time.Microsecond), 10, nil},
		{"due exactly now", base.Add(time.Minute), 10, []string{"r-01"}},
		{"closed ones are not overdue", base.Add(2 * time.Minute), 10, []string{"r-01"}},
		{"earliest first", base.Add(time.Hour), 10, []string{"r-01", "r-00", "r-03"}},
		{"limited", base.Add(time.Hour), 2, []string{"r-01", "r-00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.OverdueReservations(t.Context(), tt.now, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("OverdueReservations(%s, %d) mismatch (-want +got):\n%s", tt.now, tt.limit, diff)
			}
		})
	}
}

// testConcurrentReservations races orders for the same products and checks
// that stock is neither oversold nor undersold.
func testConcurrentReservations(t *testing.T, newStore NewStore) {
	type order struct {
		lines  []inventory.Line
		placed int // how many times
	}
	tests := []struct {
		name   string
		stock  map[string]int64
		orders []order
	}{
		{"40 orders of one unit, 10 in stock", map[string]int64{"A": 10}, []order{
			{[]inventory.Line{{SKU: "A", Quantity: 1}}, 40},
		}},
		{"single and two-line orders", map[string]int64{"A": 10, "B": 10}, []order{
			{[]inventory.Line{{SKU: "A", Quantity: 1}}, 20},
			{[]inventory.Line{{SKU: "B", Quantity: 2}}, 10},
			{[]inventory.Line{{SKU: "B", Quantity: 1}, {SKU: "A", Quantity: 1}}, 10},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var catalog []inventory.ProductWithStock
			for sku, n := range tt.stock {
				catalog = append(catalog, Product(sku, n))
			}
			s := newStore(t, catalog...)

			var orders [][]inventory.Line
			for _, o := range tt.orders {
				for range o.placed {
					orders = append(orders, o.lines)
				}
			}
			errs := make([]error, len(orders))
			var wg sync.WaitGroup
			for i, lines := range orders {
				wg.Go(func() {
					_, errs[i] = s.CreateReservation(t.Context(), pending(i, time.Minute, lines...))
				})
			}
			wg.Wait()

			reserved := map[string]int64{}
			var refused [][]inventory.Line
			for i, err := range errs {
				var short *inventory.InsufficientStockError
				switch {
				case err == nil:
					for _, l := range orders[i] {
						reserved[l.SKU] += l.Quantity
					}
				case errors.As(err, &short):
					refused = append(refused, orders[i])
				default:
					t.Errorf("order %d: %v", i, err)
				}
			}
			final := map[string]inventory.Stock{}
			for sku, initial := range tt.stock {
				got := stockOf(t, s, sku)
				final[sku] = got
				want := inventory.Stock{SKU: sku, Available: initial - reserved[sku], Reserved: reserved[sku]}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("stock of %s does not match the successful orders (-want +got):\n%s", sku, diff)
				}
				if got.Available < 0 || got.Reserved < 0 {
					t.Errorf("stock of %s went negative: %+v", sku, got)
				}
			}
			// Stock only ever shrank, so every refused order must still be
			// short of some product: otherwise it was refused wrongly.
			for _, lines := range refused {
				if !slices.ContainsFunc(lines, func(l inventory.Line) bool { return final[l.SKU].Available < l.Quantity }) {
					t.Errorf("order %v was refused, yet its stock is still there: %v", lines, final)
				}
			}
			if len(refused) == 0 {
				t.Error("no order was refused: the test did not create contention")
			}
		})
	}
}

func testConcurrentSameOrder(t *testing.T, newStore NewStore) {
	s := newStore(t, Product("A", 10))
	const attempts = 10
	got := make([]inventory.Reservation, attempts)
	errs := make([]error, attempts)
	var wg sync.WaitGroup
	for i := range attempts {
		wg.Go(func() {
			r := pending(i, time.Minute, inventory.Line{SKU: "A", Quantity: 2})
			r.OrderID = "the-order"
			got[i], errs[i] = s.CreateReservation(t.Context(), r)
		})
	}
	wg.Wait()
	for i := range attempts {
		if errs[i] != nil {
			t.Fatalf("attempt %d: %v", i, errs[i])
		}
		if diff := cmp.Diff(got[0], got[i]); diff != "" {
			t.Errorf("attempt %d returned another reservation than attempt 0 (-0 +%d):\n%s", i, i, diff)
		}
	}
	if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 8, Reserved: 2}, stockOf(t, s, "A")); diff != "" {
		t.Errorf("stock mismatch, want one reservation's worth (-want +got):\n%s", diff)
	}
}

// testConcurrentCloses races closes on each of many reservations: exactly
// one takes it out of PENDING, a release may then undo a commit, and stock
// adds up whichever order they ran in.
func testConcurrentCloses(t *testing.T, newStore NewStore) {
	const (
		committed = inventory.StatusCommitted
		released  = inventory.StatusReleased
		expired   = inventory.StatusExpired
	)
	// outcomes maps the closes that may win on one reservation, in status
	// order, to the status they leave it in.
	outcomes := map[string]inventory.Status{
		"COMMITTED":          committed,
		"EXPIRED":            expired,
		"RELEASED":           released,
		"COMMITTED RELEASED": released, // the release undid the sale
	}
	tests := []struct {
		name   string
		race   []inventory.Status // the closes racing on each reservation
		finals []inventory.Status // the statuses a reservation may end in
	}{
		{"commit, release and expire", []inventory.Status{committed, released, expired}, []inventory.Status{released, expired}},
		{"commit and expire", []inventory.Status{committed, expired}, []inventory.Status{committed, expired}},
		{"commit and two releases", []inventory.Status{committed, released, released}, []inventory.Status{released}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const reservations, initial = 15, 100
			s := newStore(t, Product("A", initial), Product("B", initial))
			lines := []inventory.Line{{SKU: "A", Quantity: 1}, {SKU: "B", Quantity: 2}}
			for n := range reservations {
				if _, err := s.CreateReservation(t.Context(), pending(n, time.Minute, lines...)); err != nil {
					t.Fatal(err)
				}
			}
			type result struct {
				r      inventory.Reservation
				closed bool
				err    error
			}
			results := make([][]result, reservations)
			var wg sync.WaitGroup
			for n := range reservations {
				results[n] = make([]result, len(tt.race))
				for i, to := range tt.race {
					wg.Go(func() {
						r, closed, err := s.CloseReservation(t.Context(), fmt.Sprintf("r-%02d", n), to, base.Add(time.Hour))
						results[n][i] = result{r, closed, err}
					})
				}
			}
			wg.Wait()

			seen := map[string]int{}
			var sold int64 // reservations that ended COMMITTED
			for n, rs := range results {
				var winners []string
				for i, res := range rs {
					if res.err != nil {
						t.Fatalf("reservation %d, close to %s: %v", n, tt.race[i], res.err)
					}
					if res.closed {
						winners = append(winners, string(tt.race[i]))
						if res.r.Status != tt.race[i] {
							t.Errorf("reservation %d: close to %s won but returned status %s", n, tt.race[i], res.r.Status)
						}
					}
					if res.r.Status == inventory.StatusPending {
						t.Errorf("reservation %d: close to %s returned it PENDING", n, tt.race[i])
					}
				}
				slices.Sort(winners)
				key := strings.Join(winners, " ")
				seen[key]++
				want, ok := outcomes[key]
				if !ok {
					t.Errorf("reservation %d closed by %v, want exactly one close out of PENDING, then at most a release of the sale", n, winners)
					continue
				}
				if !slices.Contains(tt.finals, want) {
					t.Errorf("reservation %d closed by %v ends %s, want one of %v", n, winners, want, tt.finals)
				}
				stored, err := s.Reservation(t.Context(), fmt.Sprintf("o-%02d", n))
				if err != nil {
					t.Fatal(err)
				}
				if stored.Status != want {
					t.Errorf("reservation %d closed by %v is stored %s, want %s", n, winners, stored.Status, want)
				}
				if stored.Status == committed {
					sold++
				}
			}
			t.Logf("winners: %v", seen)
			for _, l := range lines {
				want := inventory.Stock{SKU: l.SKU, Available: initial - sold*l.Quantity}
				if diff := cmp.Diff(want, stockOf(t, s, l.SKU)); diff != "" {
					t.Errorf("stock of %s mismatch: initial = available + reserved + sold must hold (-want +got):\n%s", l.SKU, diff)
				}
			}
		})
	}
}

func stockOf(t *testing.T, s inventory.Store, sku string) inventory.Stock {
	t.Helper()
	p, err := s.Product(t.Context(), sku)
	if err != nil {
		t.Fatalf("read stock of %s: %v", sku, err)
	}
	return p.Stock
}
