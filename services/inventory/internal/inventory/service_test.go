package inventory_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/clocktest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/inventory/inventorytest"
)

const ttl = 15 * time.Minute

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// newService returns a Service on an in-memory store holding catalog, and
// its clock, at start. The store keeps the contract the database stores
// keep (inventorytest.RunStoreContract runs on all of them).
func newService(t *testing.T, catalog ...inventory.ProductWithStock) (*inventory.Service, *clocktest.Clock) {
	t.Helper()
	c := clocktest.New(start)
	return inventory.NewService(inventorytest.NewMemoryStore(catalog...), c.Now, ttl), c
}

func stockOf(t *testing.T, svc *inventory.Service, sku string) inventory.Stock {
	t.Helper()
	p, err := svc.GetProduct(t.Context(), sku)
	if err != nil {
		t.Fatalf("GetProduct(%s): %v", sku, err)
	}
	return p.Stock
}

func fieldErrors(t *testing.T, err error) []inventory.FieldError {
	t.Helper()
	var invalid *inventory.ValidationError
	if !errors.As(err, &invalid) {
		t.Fatalf("error = %v, want a *inventory.ValidationError", err)
	}
	return invalid.Errors
}

func TestService(t *testing.T) {
	t.Run("ListProducts pages through the catalog", func(t *testing.T) { testListProducts(t) })
	t.Run("GetProduct", func(t *testing.T) { testGetProduct(t) })
	t.Run("AdjustStock", func(t *testing.T) { testAdjustStock(t) })
	t.Run("Reserve", func(t *testing.T) { testReserve(t) })
	t.Run("Commit and Release", func(t *testing.T) { testCommitAndRelease(t) })
	t.Run("ExpireStale", func(t *testing.T) { testExpireStale(t) })
	t.Run("Reservation and WithStore", func(t *testing.T) { testReservation(t) })
	t.Run("Expirer", func(t *testing.T) { testExpirer(t) })
	t.Run("concurrent Reserve never oversells", func(t *testing.T) { testConcurrentReserve(t) })
	t.Run("concurrent Commit, Release and ExpireStale", func(t *testing.T) { testConcurrentSettle(t) })
}

func testListProducts(t *testing.T) {
	svc, _ := newService(t,
		inventorytest.Product("E", 0), inventorytest.Product("A", 1), inventorytest.Product("D", 4),
		inventorytest.Product("B", 0), inventorytest.Product("C", 3))
	tests := []struct {
		name   string
		filter inventory.Filter
		limit  int
		want   [][]string // SKUs page by page
	}{
		{"pages of 2", inventory.Filter{}, 2, [][]string{{"A", "B"}, {"C", "D"}, {"E"}}},
		{"exact pages", inventory.Filter{}, 5, [][]string{{"A", "B", "C", "D", "E"}}},
		{"one page", inventory.Filter{}, 100, [][]string{{"A", "B", "C", "D", "E"}}},
		{"filtered", inventory.Filter{InStockOnly: true}, 2, [][]string{{"A", "C"}, {"D"}}},
		{"nothing matches", inventory.Filter{Query: "teapot"}, 2, [][]string{{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got [][]string
			cursor := ""
			for page := 0; page == 0 || cursor != ""; page++ {
				if page > len(tt.want) {
					t.Fatalf("more than %d pages: next cursor %q", len(tt.want), cursor)
				}
				items, next, err := svc.ListProducts(t.Context(), tt.filter, tt.limit, cursor)
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				skus := []string{}
				for _, p := range items {
					skus = append(skus, p.Product.SKU)
				}
				got = append(got, skus)
				cursor = next
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("pages mismatch (-want +got):\n%s", diff)
			}
		})
	}

	invalid := []struct {
		name   string
		filter inventory.Filter
		limit  int
		want   []inventory.FieldError
	}{
		{"limit 0", inventory.Filter{}, 0, []inventory.FieldError{{Field: "limit", Message: "must be from 1 to 100"}}},
		{"limit 101", inventory.Filter{}, 101, []inventory.FieldError{{Field: "limit", Message: "must be from 1 to 100"}}},
		{"query too long", inventory.Filter{Query: strings.Repeat("é", 101)}, 10,
			[]inventory.FieldError{{Field: "query", Message: "must be at most 100 characters"}}},
		{"query not UTF-8", inventory.Filter{Query: "\xff"}, 10, []inventory.FieldError{{Field: "query", Message: "must be valid UTF-8"}}},
		{"query with NUL", inventory.Filter{Query: "a\x00b"}, 10, []inventory.FieldError{{Field: "query", Message: "must not contain control characters"}}},
		{"both", inventory.Filter{Query: "\n"}, -1, []inventory.FieldError{
			{Field: "limit", Message: "must be from 1 to 100"},
			{Field: "query", Message: "must not contain control characters"},
		}},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := svc.ListProducts(t.Context(), tt.filter, tt.limit, "")
			if diff := cmp.Diff(tt.want, fieldErrors(t, err)); diff != "" {
				t.Errorf("field errors mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("longest query", func(t *testing.T) {
		if _, _, err := svc.ListProducts(t.Context(), inventory.Filter{Query: strings.Repeat("é", 100)}, 10, ""); err != nil {
			t.Errorf("ListProducts with a query of 100 characters: %v", err)
		}
	})

	for _, cursor := range []string{"!!!", "QQ==", "bG93ZXI" /* "lower" */, "QUJD\n", strings.Repeat("QUFB", 30) /* 90 A's */} {
		t.Run("invalid cursor "+cursor, func(t *testing.T) {
			if _, _, err := svc.ListProducts(t.Context(), inventory.Filter{}, 10, cursor); !errors.Is(err, inventory.ErrInvalidCursor) {
				t.Errorf("ListProducts(cursor %q) error = %v, want ErrInvalidCursor", cursor, err)
			}
		})
	}
}

func testGetProduct(t *testing.T) {
	want := inventorytest.Product("MUG-CLASSIC", 3)
	svc, _ := newService(t, want)
	got, err := svc.GetProduct(t.Context(), "MUG-CLASSIC")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GetProduct mismatch (-want +got):\n%s", diff)
	}
	for _, sku := range []string{"MUG-NONE", "mug-classic", "", "MUG CLASSIC", strings.Repeat("A", 65)} {
		if _, err := svc.GetProduct(t.Context(), sku); !errors.Is(err, inventory.ErrProductNotFound) {
			t.Errorf("GetProduct(%q) error = %v, want ErrProductNotFound", sku, err)
		}
	}
}

func testAdjustStock(t *testing.T) {
	deltaError := []inventory.FieldError{{Field: "delta", Message: "must be a non-zero integer from -1000000 to 1000000"}}
	tests := []struct {
		name      string
		sku       string
		delta     int64
		want      inventory.Stock
		wantErr   error
		wantField []inventory.FieldError
	}{
		{"largest restock", "A", 1_000_000, inventory.Stock{SKU: "A", Available: 1_000_005}, nil, nil},
		{"shrink", "A", -5, inventory.Stock{SKU: "A", Available: 0}, nil, nil},
		{"too much shrink", "A", -6, inventory.Stock{}, &inventory.InsufficientStockError{SKU: "A", Requested: 6, Available: 5}, nil},
		{"unknown product", "B", 1, inventory.Stock{}, inventory.ErrProductNotFound, nil},
		{"not a SKU", "a b", 1, inventory.Stock{}, inventory.ErrProductNotFound, nil},
		{"zero", "A", 0, inventory.Stock{}, &inventory.ValidationError{Errors: deltaError}, deltaError},
		{"too large", "A", 1_000_001, inventory.Stock{}, &inventory.ValidationError{Errors: deltaError}, deltaError},
		{"too small", "A", -1_000_001, inventory.Stock{}, &inventory.ValidationError{Errors: deltaError}, deltaError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := newService(t, inventorytest.Product("A", 5))
			got, err := svc.AdjustStock(t.Context(), tt.sku, tt.delta)
			if diff := cmp.Diff(tt.wantErr, err, inventorytest.EquateErrors); diff != "" {
				t.Errorf("AdjustStock(%q, %d) error mismatch (-want +got):\n%s", tt.sku, tt.delta, diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AdjustStock(%q, %d) mismatch (-want +got):\n%s", tt.sku, tt.delta, diff)
			}
		})
	}
}

func testReserve(t *testing.T) {
	t.Run("holds stock until the TTL", func(t *testing.T) {
		svc, _ := newService(t, inventorytest.Product("A", 5), inventorytest.Product("B", 5))
		got, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "B", Quantity: 1}, {SKU: "A", Quantity: 2}})
		if err != nil {
			t.Fatal(err)
		}
		id, err := uuid.Parse(got.ID)
		if err != nil || id.Version() != 7 {
			t.Errorf("ID %q is not a UUIDv7 (%v)", got.ID, err)
		}
		want := inventory.Reservation{
			ID:        got.ID,
			OrderID:   "o-1",
			Lines:     []inventory.Line{{SKU: "A", Quantity: 2}, {SKU: "B", Quantity: 1}},
			Status:    inventory.StatusPending,
			ExpiresAt: start.Add(ttl),
			CreatedAt: start,
			UpdatedAt: start,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Reserve mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 3, Reserved: 2}, stockOf(t, svc, "A")); diff != "" {
			t.Errorf("stock mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("again for the order returns the reservation unchanged", func(t *testing.T) {
		svc, clk := newService(t, inventorytest.Product("A", 5))
		first, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "A", Quantity: 2}})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
		again, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "A", Quantity: 5}})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("second Reserve mismatch (-first +second):\n%s", diff)
		}
		if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 3, Reserved: 2}, stockOf(t, svc, "A")); diff != "" {
			t.Errorf("stock mismatch (-want +got):\n%s", diff)
		}
	})

	failures := []struct {
		name    string
		orderID string
		lines   []inventory.Line
		wantErr error
	}{
		{"insufficient stock", "o-1", []inventory.Line{{SKU: "A", Quantity: 6}},
			&inventory.InsufficientStockError{SKU: "A", Requested: 6, Available: 5}},
		{"unknown product", "o-1", []inventory.Line{{SKU: "A", Quantity: 1}, {SKU: "NOPE", Quantity: 1}},
			&inventory.UnknownProductError{SKU: "NOPE"}},
		{"no order", "", []inventory.Line{{SKU: "A", Quantity: 1}},
			&inventory.ValidationError{Errors: []inventory.FieldError{{Field: "order_id", Message: "is required"}}}},
		{"order id too long", strings.Repeat("o", 101), []inventory.Line{{SKU: "A", Quantity: 1}},
			&inventory.ValidationError{Errors: []inventory.FieldError{{Field: "order_id", Message: "must be at most 100 characters"}}}},
		{"order id not UTF-8", "o\xff", []inventory.Line{{SKU: "A", Quantity: 1}},
			&inventory.ValidationError{Errors: []inventory.FieldError{{Field: "order_id", Message: "must be valid UTF-8"}}}},
		{"order id with a control character", "o\t1", []inventory.Line{{SKU: "A", Quantity: 1}},
			&inventory.ValidationError{Errors: []inventory.FieldError{{Field: "order_id", Message: "must not contain control characters"}}}},
		{"no lines", "o-1", nil,
			&inventory.ValidationError{Errors: []inventory.FieldError{{Field: "lines", Message: "must hold at least one line"}}}},
		{"too many lines", "o-1", manyLines(51),
			&inventory.ValidationError{Errors: []inventory.FieldError{{Field: "lines", Message: "must hold at most 50 lines"}}}},
		{"every line wrong", "o-1", []inventory.Line{
			{SKU: "A", Quantity: 0},
			{SKU: "", Quantity: 1},
			{SKU: "a", Quantity: 1001},
			{SKU: "A", Quantity: -1},
		}, &inventory.ValidationError{Errors: []inventory.FieldError{
			{Field: "lines[0].quantity", Message: "must be from 1 to 1000"},
			{Field: "lines[1].sku", Message: "is required"},
			{Field: "lines[2].sku", Message: "must be 1 to 64 characters of A-Z, 0-9 and -"},
			{Field: "lines[2].quantity", Message: "must be from 1 to 1000"},
			{Field: "lines[3].sku", Message: "appears in an earlier line"},
			{Field: "lines[3].quantity", Message: "must be from 1 to 1000"},
		}}},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			svc, _ := newService(t, inventorytest.Product("A", 5))
			got, err := svc.Reserve(t.Context(), tt.orderID, tt.lines)
			if diff := cmp.Diff(tt.wantErr, err, inventorytest.EquateErrors); diff != "" {
				t.Errorf("Reserve error mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(inventory.Reservation{}, got); diff != "" {
				t.Errorf("Reserve returned a reservation with its error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 5}, stockOf(t, svc, "A")); diff != "" {
				t.Errorf("stock mismatch, want it untouched (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("most lines", func(t *testing.T) {
		var catalog []inventory.ProductWithStock
		for _, l := range manyLines(50) {
			catalog = append(catalog, inventorytest.Product(l.SKU, 1))
		}
		svc, _ := newService(t, catalog...)
		if _, err := svc.Reserve(t.Context(), "o-1", manyLines(50)); err != nil {
			t.Errorf("Reserve with 50 lines: %v", err)
		}
	})
}

// manyLines returns n lines of one unit of distinct products P-00, P-01, ...
func manyLines(n int) []inventory.Line {
	lines := make([]inventory.Line, n)
	for i := range lines {
		lines[i] = inventory.Line{SKU: fmt.Sprintf("P-%02d", i), Quantity: 1}
	}
	return lines
}

func testCommitAndRelease(t *testing.T) {
	type op func(*inventory.Service, context.Context, string) (inventory.Reservation, error)
	commit, release := (*inventory.Service).Commit, (*inventory.Service).Release
	// reach brings order "o-1"'s reservation from PENDING to a status.
	reach := map[inventory.Status]func(*inventory.Service, *clocktest.Clock) error{
		inventory.StatusPending: func(*inventory.Service, *clocktest.Clock) error { return nil },
		inventory.StatusCommitted: func(svc *inventory.Service, _ *clocktest.Clock) error {
			_, err := svc.Commit(t.Context(), "o-1")
			return err
		},
		inventory.StatusReleased: func(svc *inventory.Service, _ *clocktest.Clock) error {
			_, err := svc.Release(t.Context(), "o-1")
			return err
		},
		inventory.StatusExpired: func(svc *inventory.Service, clk *clocktest.Clock) error {
			clk.Advance(ttl)
			_, err := svc.ExpireStale(t.Context())
			return err
		},
	}
	tests := []struct {
		name       string
		from       inventory.Status
		op         op
		wantStatus inventory.Status
		wantErr    error
		wantStock  inventory.Stock
	}{
		{"commit pending", inventory.StatusPending, commit, inventory.StatusCommitted, nil, inventory.Stock{SKU: "A", Available: 3}},
		{"release pending", inventory.StatusPending, release, inventory.StatusReleased, nil, inventory.Stock{SKU: "A", Available: 5}},
		{"commit committed", inventory.StatusCommitted, commit, inventory.StatusCommitted, nil, inventory.Stock{SKU: "A", Available: 3}},
		{"release committed undoes the sale", inventory.StatusCommitted, release, inventory.StatusReleased, nil, inventory.Stock{SKU: "A", Available: 5}},
		{"commit released", inventory.StatusReleased, commit, "", inventory.ErrReservationClosed, inventory.Stock{SKU: "A", Available: 5}},
		{"release released", inventory.StatusReleased, release, inventory.StatusReleased, nil, inventory.Stock{SKU: "A", Available: 5}},
		{"commit expired", inventory.StatusExpired, commit, "", inventory.ErrReservationClosed, inventory.Stock{SKU: "A", Available: 5}},
		{"release expired", inventory.StatusExpired, release, inventory.StatusExpired, nil, inventory.Stock{SKU: "A", Available: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, clk := newService(t, inventorytest.Product("A", 5))
			if _, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "A", Quantity: 2}}); err != nil {
				t.Fatal(err)
			}
			if err := reach[tt.from](svc, clk); err != nil {
				t.Fatalf("bring the reservation to %s: %v", tt.from, err)
			}
			got, err := tt.op(svc, t.Context(), "o-1")
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("error = %v, want %v", err, tt.wantErr)
			}
			if got.Status != tt.wantStatus {
				t.Errorf("status = %q, want %q", got.Status, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantStock, stockOf(t, svc, "A")); diff != "" {
				t.Errorf("stock mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a sale undone is not sold again", func(t *testing.T) {
		svc, _ := newService(t, inventorytest.Product("A", 5))
		if _, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "A", Quantity: 2}}); err != nil {
			t.Fatal(err)
		}
		steps := []struct {
			name       string
			op         op
			wantStatus inventory.Status
			wantErr    error
			wantStock  inventory.Stock
		}{
			{"commit", commit, inventory.StatusCommitted, nil, inventory.Stock{SKU: "A", Available: 3}},
			{"release", release, inventory.StatusReleased, nil, inventory.Stock{SKU: "A", Available: 5}},
			{"commit again", commit, "", inventory.ErrReservationClosed, inventory.Stock{SKU: "A", Available: 5}},
			{"release again", release, inventory.StatusReleased, nil, inventory.Stock{SKU: "A", Available: 5}},
		}
		for _, step := range steps {
			got, err := step.op(svc, t.Context(), "o-1")
			if !errors.Is(err, step.wantErr) || got.Status != step.wantStatus {
				t.Errorf("%s = %q, %v; want %q, %v", step.name, got.Status, err, step.wantStatus, step.wantErr)
			}
			if diff := cmp.Diff(step.wantStock, stockOf(t, svc, "A")); diff != "" {
				t.Errorf("stock after %s mismatch (-want +got):\n%s", step.name, diff)
			}
		}
	})

	t.Run("unknown order", func(t *testing.T) {
		svc, _ := newService(t, inventorytest.Product("A", 5))
		for name, op := range map[string]op{"Commit": commit, "Release": release} {
			if _, err := op(svc, t.Context(), "o-404"); !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Errorf("%s error = %v, want ErrReservationNotFound", name, err)
			}
		}
	})

	t.Run("the settling time is recorded", func(t *testing.T) {
		svc, clk := newService(t, inventorytest.Product("A", 5))
		if _, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "A", Quantity: 2}}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
		got, err := svc.Commit(t.Context(), "o-1")
		if err != nil {
			t.Fatal(err)
		}
		if want := start.Add(time.Minute); !got.UpdatedAt.Equal(want) || !got.CreatedAt.Equal(start) {
			t.Errorf("created %s, updated %s; want created %s, updated %s", got.CreatedAt, got.UpdatedAt, start, want)
		}
	})
}

func testExpireStale(t *testing.T) {
	t.Run("expires when due and returns the stock", func(t *testing.T) {
		svc, clk := newService(t, inventorytest.Product("A", 10))
		reserve := func(orderID string, n int64) {
			t.Helper()
			if _, err := svc.Reserve(t.Context(), orderID, []inventory.Line{{SKU: "A", Quantity: n}}); err != nil {
				t.Fatal(err)
			}
		}
		expire := func(want int) {
			t.Helper()
			n, err := svc.ExpireStale(t.Context())
			if err != nil || n != want {
				t.Fatalf("ExpireStale at %s = %d, %v; want %d, nil", clk.Now(), n, err, want)
			}
		}
		reserve("o-1", 2)
		clk.Advance(ttl / 2)
		reserve("o-2", 3)
		clk.Advance(ttl/2 - time.Microsecond)
		expire(0)
		clk.Advance(time.Microsecond) // o-1 is due now
		expire(1)
		if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 7, Reserved: 3}, stockOf(t, svc, "A")); diff != "" {
			t.Errorf("stock after expiring o-1 mismatch (-want +got):\n%s", diff)
		}
		if _, err := svc.Commit(t.Context(), "o-1"); !errors.Is(err, inventory.ErrReservationClosed) {
			t.Errorf("Commit of expired o-1 error = %v, want ErrReservationClosed", err)
		}
		clk.Advance(ttl)
		// o-2 is overdue, but nothing has expired it yet: it can still be sold.
		if _, err := svc.Commit(t.Context(), "o-2"); err != nil {
			t.Errorf("Commit of overdue o-2 before ExpireStale: %v", err)
		}
		expire(0)
		if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 7}, stockOf(t, svc, "A")); diff != "" {
			t.Errorf("final stock mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("more than one batch", func(t *testing.T) {
		const orders = 130
		svc, clk := newService(t, inventorytest.Product("A", orders))
		for i := range orders {
			if _, err := svc.Reserve(t.Context(), fmt.Sprintf("o-%d", i), []inventory.Line{{SKU: "A", Quantity: 1}}); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(ttl)
		if n, err := svc.ExpireStale(t.Context()); err != nil || n != orders {
			t.Errorf("ExpireStale = %d, %v; want %d, nil", n, err, orders)
		}
		if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: orders}, stockOf(t, svc, "A")); diff != "" {
			t.Errorf("stock mismatch (-want +got):\n%s", diff)
		}
	})
}

func testExpirer(t *testing.T) {
	svc, clk := newService(t, inventorytest.Product("A", 5))
	if _, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "A", Quantity: 2}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(ttl)

	var logs bytes.Buffer // read only once Run has returned
	expirer := inventory.NewExpirer(svc, time.Millisecond, slog.New(slog.NewJSONHandler(&logs, nil)))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		expirer.Run(ctx)
		close(done)
	}()
	wait, stop := context.WithTimeout(t.Context(), 10*time.Second)
	defer stop()
	poll.Until(wait, t, "the expirer to expire the reservation", func() bool { return stockOf(t, svc, "A").Reserved == 0 })
	cancel()
	<-done
	for _, want := range []string{`"msg":"reservation expirer started","interval":"1ms"`, `"msg":"reservations expired","expired":1`, `"msg":"reservation expirer stopped"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("logs lack %s:\n%s", want, logs.String())
		}
	}
}

func testConcurrentReserve(t *testing.T) {
	const orders, inStock = 40, 10
	svc, _ := newService(t, inventorytest.Product("A", inStock))
	errs := make([]error, orders)
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() {
			_, errs[i] = svc.Reserve(t.Context(), fmt.Sprintf("o-%d", i), []inventory.Line{{SKU: "A", Quantity: 1}})
		})
	}
	wg.Wait()
	succeeded := 0
	for i, err := range errs {
		switch {
		case err == nil:
			succeeded++
		case !errors.Is(err, inventory.ErrInsufficientStock):
			t.Errorf("order %d: %v, want nil or ErrInsufficientStock", i, err)
		}
	}
	if succeeded != inStock {
		t.Errorf("%d reservations succeeded, want %d", succeeded, inStock)
	}
	if diff := cmp.Diff(inventory.Stock{SKU: "A", Available: 0, Reserved: inStock}, stockOf(t, svc, "A")); diff != "" {
		t.Errorf("stock mismatch (-want +got):\n%s", diff)
	}
}

// testConcurrentSettle races Commit, Release and ExpireStale on overdue
// reservations, as a late commit, the saga's compensation and the expirers
// of several replicas would: Release always wins in the end (from PENDING,
// or undoing the commit), unless ExpireStale took the reservation first,
// and no unit stays held or sold.
func testConcurrentSettle(t *testing.T) {
	const orders, expirers, initial = 20, 3, 100
	svc, clk := newService(t, inventorytest.Product("A", initial), inventorytest.Product("B", initial))
	lines := []inventory.Line{{SKU: "A", Quantity: 1}, {SKU: "B", Quantity: 2}}
	for i := range orders {
		if _, err := svc.Reserve(t.Context(), fmt.Sprintf("o-%d", i), lines); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(ttl) // every reservation is due

	type result struct {
		r   inventory.Reservation
		err error
	}
	commits, releases := make([]result, orders), make([]result, orders)
	expired := make([]int, expirers)
	var wg sync.WaitGroup
	for i := range orders {
		orderID := fmt.Sprintf("o-%d", i)
		wg.Go(func() { commits[i].r, commits[i].err = svc.Commit(t.Context(), orderID) })
		wg.Go(func() { releases[i].r, releases[i].err = svc.Release(t.Context(), orderID) })
	}
	for i := range expirers {
		wg.Go(func() {
			var err error
			if expired[i], err = svc.ExpireStale(t.Context()); err != nil {
				t.Errorf("ExpireStale: %v", err)
			}
		})
	}
	wg.Wait()

	final := map[inventory.Status]int{}
	undone := 0 // sales the release undid
	for i := range orders {
		c, r := commits[i], releases[i]
		stored, err := svc.Reservation(t.Context(), fmt.Sprintf("o-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		final[stored.Status]++
		if r.err != nil || r.r.Status != stored.Status || (stored.Status != inventory.StatusReleased && stored.Status != inventory.StatusExpired) {
			t.Errorf("order %d: Release = %q, %v; stored %q; want RELEASED or EXPIRED, as stored, and no error", i, r.r.Status, r.err, stored.Status)
		}
		soldThenReleased := c.err == nil && c.r.Status == inventory.StatusCommitted && stored.Status == inventory.StatusReleased
		if !soldThenReleased && !errors.Is(c.err, inventory.ErrReservationClosed) {
			t.Errorf("order %d: Commit = %q, %v; stored %q; want it refused, or committed and then released",
				i, c.r.Status, c.err, stored.Status)
		}
		if soldThenReleased {
			undone++
		}
	}
	totalExpired := 0
	for _, n := range expired {
		totalExpired += n
	}
	if totalExpired != final[inventory.StatusExpired] {
		t.Errorf("ExpireStale calls expired %d in all, but %d reservations ended EXPIRED", totalExpired, final[inventory.StatusExpired])
	}
	t.Logf("outcomes: %v, of which %d sales undone", final, undone)

	for _, l := range lines {
		want := inventory.Stock{SKU: l.SKU, Available: initial}
		if diff := cmp.Diff(want, stockOf(t, svc, l.SKU)); diff != "" {
			t.Errorf("stock of %s: every unit must be back on sale (-want +got):\n%s", l.SKU, diff)
		}
	}
}

func testReservation(t *testing.T) {
	svc, _ := newService(t, inventorytest.Product("MUG", 5))
	if _, err := svc.Reservation(t.Context(), "o-1"); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Errorf("Reservation before Reserve: error %v, want ErrReservationNotFound", err)
	}
	reserved, err := svc.Reserve(t.Context(), "o-1", []inventory.Line{{SKU: "MUG", Quantity: 2}})
	if err != nil {
		t.Fatal(err)
	}
	released, err := svc.Release(t.Context(), "o-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := svc.Reservation(t.Context(), "o-1")
	if err != nil || got.ID != reserved.ID || got.Status != inventory.StatusReleased {
		t.Errorf("Reservation = %+v, %v; want %s RELEASED", got, err, reserved.ID)
	}
	if diff := cmp.Diff(released, got); diff != "" {
		t.Errorf("Reservation mismatch with what Release returned (-want +got):\n%s", diff)
	}

	// A Service on another store keeps the clock and TTL but not the data.
	other := svc.WithStore(inventorytest.NewMemoryStore(inventorytest.Product("MUG", 5)))
	if _, err := other.Reservation(t.Context(), "o-1"); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Errorf("Reservation on another store: error %v, want ErrReservationNotFound", err)
	}
	r, err := other.Reserve(t.Context(), "o-2", []inventory.Line{{SKU: "MUG", Quantity: 1}})
	if err != nil || !r.ExpiresAt.Equal(start.Add(ttl)) {
		t.Errorf("Reserve on another store = %+v, %v; want it to expire at %v", r, err, start.Add(ttl))
	}
}
