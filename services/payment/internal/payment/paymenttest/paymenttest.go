// Package paymenttest is test support for the payment service: the contract
// every payment.Store honours (StoreContract) and the real databases to run
// it and the use cases on.
package paymenttest

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/services/payment/migrations"
)

// Databases returns, per engine (database.SQLite, database.Postgres), a
// function creating a fresh empty database and returning its URL. It starts
// a PostgreSQL cluster for the life of t; without Postgres, t is skipped (or
// fails under CI, see pgtest).
func Databases(t *testing.T) map[string]func(t *testing.T) string {
	t.Helper()
	cluster := pgtest.Start(t)
	return map[string]func(t *testing.T) string{
		database.SQLite:   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "payment.db") },
		database.Postgres: func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
}

// Open opens the database at url with the payment migrations applied, and
// closes it when t ends.
func Open(t testing.TB, url string) *database.DB {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	db, err := database.Open(t.Context(), url, log)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := database.Migrate(t.Context(), db, migrations.FS, log); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return db
}
