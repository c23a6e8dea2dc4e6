package db_test

import (
	"regexp"
	"testing"

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
