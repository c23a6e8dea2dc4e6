// Package dbtest opens real inventory databases for tests: a fresh, migrated
// SQLite file or PostgreSQL database per call, holding exactly the catalog
// the test asks for.
package dbtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/migrations"
)

// Engine is a database to run a test against.
type Engine struct {
	// Name is "sqlite", "postgres" or "postgres-icu".
	Name string
	// NewURL returns the URL of a fresh, empty database.
	NewURL func(t testing.TB) string
}

// NewStore opens a store on a fresh database of e holding catalog and no
// other product. The database is closed at the end of the test.
func (e Engine) NewStore(t testing.TB, catalog ...inventory.ProductWithStock) *db.Store {
	t.Helper()
	d := Open(t, e.NewURL(t))
	replaceCatalog(t, d, catalog)
	return db.NewStore(d)
}

// NewDB opens a fresh database of e holding catalog and no other product,
// migrated as the service migrates its own: the inventory's tables, the
// outbox and the saga barrier. It is closed at the end of the test.
func (e Engine) NewDB(t testing.TB, catalog ...inventory.ProductWithStock) *database.DB {
	t.Helper()
	d := Open(t, e.NewURL(t))
	log := slog.New(slog.DiscardHandler)
	if err := outbox.Migrate(t.Context(), d, log); err != nil {
		t.Fatalf("migrate the outbox: %v", err)
	}
	if err := saga.MigrateBarrier(t.Context(), d, log); err != nil {
		t.Fatalf("migrate the saga barrier: %v", err)
	}
	replaceCatalog(t, d, catalog)
	return d
}

// SQLite returns the SQLite engine: files in the test's temporary directory.
func SQLite() Engine {
	return Engine{Name: "sqlite", NewURL: func(t testing.TB) string {
		return "sqlite:" + filepath.Join(t.TempDir(), "inventory.db")
	}}
}

// Engines returns SQLite and two kinds of Postgres database on a cluster
// started for t (see pgtest.Start): "postgres" has the cluster's C locale;
// "postgres-icu" sorts the en-US way, ignoring punctuation, and changes the
// case of any letter, as Postgres does under a natural-language default
// locale such as en_US.UTF-8: there, code that assumes byte order or
// ASCII-only case folding breaks.
func Engines(t testing.TB) []Engine {
	t.Helper()
	cluster := pgtest.Start(t)
	return []Engine{
		SQLite(),
		{Name: "postgres", NewURL: func(t testing.TB) string { return pgtest.NewDatabase(t, cluster) }},
		{Name: "postgres-icu", NewURL: func(t testing.TB) string { return newICUDatabase(t, cluster) }},
	}
}

// Open opens and migrates the database at url, demo catalog included, and
// closes it at the end of the test.
func Open(t testing.TB, url string) *database.DB {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	d, err := database.Open(ctx, url, log)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { d.Close() })
	if err := database.Migrate(ctx, d, migrations.FS, log); err != nil {
		t.Fatalf("migrate database: %v", err)
	}
	return d
}

// replaceCatalog deletes the demo catalog and inserts catalog instead.
func replaceCatalog(t testing.TB, d *database.DB, catalog []inventory.ProductWithStock) {
	t.Helper()
	for _, stmt := range []string{"DELETE FROM stock", "DELETE FROM products"} {
		if err := d.Exec(stmt).Error; err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	for _, p := range catalog {
		err := d.Exec("INSERT INTO products (sku, name, description, price_minor, currency, image_ref) VALUES (?, ?, ?, ?, ?, ?)",
			p.Product.SKU, p.Product.Name, p.Product.Description, p.Product.Price.Minor, p.Product.Price.Currency, p.Product.ImageRef).Error
		if err != nil {
			t.Fatalf("insert product %s: %v", p.Product.SKU, err)
		}
		err = d.Exec("INSERT INTO stock (sku, available, reserved) VALUES (?, ?, ?)",
			p.Product.SKU, p.Stock.Available, p.Stock.Reserved).Error
		if err != nil {
			t.Fatalf("insert stock of %s: %v", p.Product.SKU, err)
		}
	}
}

// newICUDatabase creates a database whose default collation is ICU's en-US
// with punctuation ignored (ka-shifted, like glibc's en_US.UTF-8) and whose
// case mapping is Unicode-aware (C.utf8), and returns its URL.
func newICUDatabase(t testing.TB, cluster *pgcluster.Cluster) string {
	t.Helper()
	admin, err := database.Open(t.Context(), cluster.URL("postgres"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("connect to create a database: %v", err)
	}
	defer admin.Close()
	name := "icu_" + strings.ToLower(rand.Text())
	err = admin.Exec(fmt.Sprintf(`CREATE DATABASE %s TEMPLATE template0 ENCODING 'UTF8'
		LOCALE_PROVIDER icu ICU_LOCALE 'en-US-u-ka-shifted' LC_COLLATE 'C.utf8' LC_CTYPE 'C.utf8'`, name)).Error
	if err != nil {
		t.Fatalf("create database with ICU collation: %v", err)
	}
	return cluster.URL(name)
}
