package db_test

import (
	"errors"
	"regexp"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/db/dbtest"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/inventory/inventorytest"
)

func TestStoreContract(t *testing.T) {
	for _, engine := range dbtest.Engines(t) {
		t.Run(engine.Name, func(t *testing.T) {
			inventorytest.RunStoreContract(t, func(t *testing.T, catalog ...inventory.ProductWithStock) inventory.Store {
				return engine.NewStore(t, catalog...)
			})
		})
	}
}

func TestMigrations(t *testing.T) {
	for _, engine := range dbtest.Engines(t) {
		t.Run(engine.Name, func(t *testing.T) {
			t.Run("demo catalog", func(t *testing.T) {
				url := engine.NewURL(t)
				dbtest.Open(t, url).Close()
				store := db.NewStore(dbtest.Open(t, url)) // migrating again must not seed twice
				items, err := store.ListProducts(t.Context(), inventory.Filter{}, "", 1000)
				if err != nil {
					t.Fatal(err)
				}
				if len(items) < 20 {
					t.Errorf("demo catalog has %d products, want at least 20", len(items))
				}
				sku := regexp.MustCompile(`^[A-Z0-9]+(-[A-Z0-9]+)*$`)
				lowStock := map[int64]bool{}
				for _, p := range items {
					if !sku.MatchString(p.Product.SKU) {
						t.Errorf("SKU %q is not upper-case words joined by '-'", p.Product.SKU)
					}
					if p.Product.Name == "" || len(p.Product.Description) < 20 {
						t.Errorf("%s: name %q, description %q: want both filled in", p.Product.SKU, p.Product.Name, p.Product.Description)
					}
					if p.Product.Price.Currency != "EUR" || p.Product.Price.Minor <= 0 {
						t.Errorf("%s: price %v, want a positive EUR amount", p.Product.SKU, p.Product.Price)
					}
					if want := "/images/" + p.Product.SKU + ".svg"; p.Product.ImageRef != want {
						t.Errorf("%s: image ref %q, want %q", p.Product.SKU, p.Product.ImageRef, want)
					}
					if p.Stock.Reserved != 0 {
						t.Errorf("%s: %d reserved, want none", p.Product.SKU, p.Stock.Reserved)
					}
					lowStock[p.Stock.Available] = true
				}
				for _, n := range []int64{0, 1, 2, 3} {
					if !lowStock[n] {
						t.Errorf("no demo product has exactly %d units available", n)
					}
				}
			})

			t.Run("constraints refuse what the code must never do", func(t *testing.T) {
				d := dbtest.Open(t, engine.NewURL(t))
				for _, stmt := range []string{
					"UPDATE stock SET available = -1 WHERE sku = 'MUG-CLASSIC'",
					"UPDATE stock SET reserved = -1 WHERE sku = 'MUG-CLASSIC'",
					"INSERT INTO stock (sku, available, reserved) VALUES ('NO-SUCH-PRODUCT', 1, 0)",
					"INSERT INTO products (sku, name, price_minor, currency) VALUES ('lower-case', 'x', 1, 'EUR')",
					"INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at) VALUES ('r', 'o', 'LOST', '2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
				} {
					if err := d.Exec(stmt).Error; err == nil {
						t.Errorf("%s: accepted, want a constraint violation", stmt)
					}
				}
			})
		})
	}
}

// TestStoreInTx checks that a store bound to a caller's transaction changes
// nothing unless that transaction commits, and that a refused call undoes
// only its own changes.
func TestStoreInTx(t *testing.T) {
	errRollback := errors.New("roll back")
	for _, engine := range dbtest.Engines(t) {
		t.Run(engine.Name, func(t *testing.T) {
			d := engine.NewDB(t, inventorytest.Product("MUG", 5), inventorytest.Product("PEN", 1))
			store := db.NewStore(d)
			at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			reservation := func(order string, lines ...inventory.Line) inventory.Reservation {
				return inventory.Reservation{ID: "r-" + order, OrderID: order, Lines: lines, Status: inventory.StatusPending,
					ExpiresAt: at.Add(time.Hour), CreatedAt: at, UpdatedAt: at}
			}

			err := d.Transaction(func(tx *gorm.DB) error {
				if _, err := store.InTx(tx).CreateReservation(t.Context(), reservation("rolled-back", inventory.Line{SKU: "MUG", Quantity: 2})); err != nil {
					return err
				}
				return errRollback
			})
			if !errors.Is(err, errRollback) {
				t.Fatalf("transaction = %v, want %v", err, errRollback)
			}
			if _, err := store.Reservation(t.Context(), "rolled-back"); !errors.Is(err, inventory.ErrReservationNotFound) {
				t.Errorf("reservation of a rolled-back transaction: error %v, want ErrReservationNotFound", err)
			}

			err = d.Transaction(func(tx *gorm.DB) error {
				s := store.InTx(tx)
				_, err := s.CreateReservation(t.Context(), reservation("refused", inventory.Line{SKU: "MUG", Quantity: 2}, inventory.Line{SKU: "PEN", Quantity: 2}))
				if !errors.Is(err, inventory.ErrInsufficientStock) {
					t.Errorf("reserve 2 of 1 PEN: error %v, want ErrInsufficientStock", err)
				}
				// The transaction goes on after the refusal.
				r, err := s.CreateReservation(t.Context(), reservation("kept", inventory.Line{SKU: "MUG", Quantity: 1}))
				if err != nil {
					return err
				}
				_, _, err = s.CloseReservation(t.Context(), r.ID, inventory.StatusCommitted, at)
				return err
			})
			if err != nil {
				t.Fatalf("transaction = %v, want nil", err)
			}
			if r, err := store.Reservation(t.Context(), "kept"); err != nil || r.Status != inventory.StatusCommitted {
				t.Errorf("reservation of a committed transaction = %+v, %v; want it COMMITTED", r, err)
			}
			for sku, want := range map[string]inventory.Stock{"MUG": {SKU: "MUG", Available: 4}, "PEN": {SKU: "PEN", Available: 1}} {
				p, err := store.Product(t.Context(), sku)
				if err != nil || p.Stock != want {
					t.Errorf("stock of %s = %+v, %v; want %+v", sku, p.Stock, err, want)
				}
			}
		})
	}
}
