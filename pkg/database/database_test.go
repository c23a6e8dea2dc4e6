package database_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
)

var migrations = os.DirFS("testdata/migrations")

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// backends returns a fresh, empty database URL per engine.
func backends(t *testing.T) map[string]func(t *testing.T) string {
	cluster := pgtest.Start(t)
	return map[string]func(t *testing.T) string{
		database.SQLite: func(t *testing.T) string {
			return "sqlite:" + filepath.Join(t.TempDir(), "sub", "test.db")
		},
		database.Postgres: func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
}

func openMigrated(t *testing.T, url string) *database.DB {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, url, discard())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := database.Migrate(ctx, db, migrations, discard()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

func TestDatabase(t *testing.T) {
	for dialect, newURL := range backends(t) {
		t.Run(dialect, func(t *testing.T) {
			t.Run("dialect", func(t *testing.T) {
				if got := openMigrated(t, newURL(t)).Dialect(); got != dialect {
					t.Errorf("Dialect() = %q, want %q", got, dialect)
				}
			})
			t.Run("migrations apply once and persist", func(t *testing.T) {
				url := newURL(t)
				openMigrated(t, url).Close()
				db := openMigrated(t, url) // second run must be a no-op, not a duplicate seed
				var n int64
				if err := db.Table("counters").Count(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 1 {
					t.Errorf("counters rows = %d, want 1 (seed applied exactly once)", n)
				}
			})
			t.Run("check constraint enforced", func(t *testing.T) {
				db := openMigrated(t, newURL(t))
				err := db.Exec("UPDATE counters SET value = -1 WHERE name = 'hits'").Error
				if err == nil {
					t.Fatal("negative value accepted; want the CHECK constraint to refuse it")
				}
			})
			t.Run("unique violation is translated", func(t *testing.T) {
				db := openMigrated(t, newURL(t))
				err := db.Exec("INSERT INTO counters (name, value) VALUES ('hits', 1)").Error
				if !errors.Is(err, gorm.ErrDuplicatedKey) {
					t.Fatalf("duplicate insert error = %v, want gorm.ErrDuplicatedKey", err)
				}
			})
			t.Run("concurrent writers all succeed", func(t *testing.T) {
				db := openMigrated(t, newURL(t))
				const writers, each = 8, 25
				var wg sync.WaitGroup
				errs := make(chan error, writers*each)
				for range writers {
					wg.Go(func() {
						for range each {
							errs <- db.Transaction(func(tx *gorm.DB) error {
								var v int64
								if err := tx.Raw("SELECT value FROM counters WHERE name = 'hits'").Scan(&v).Error; err != nil {
									return err
								}
								return tx.Exec("UPDATE counters SET value = value + 1 WHERE name = 'hits'").Error
							})
						}
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("transaction: %v", err)
					}
				}
				var got int64
				if err := db.Raw("SELECT value FROM counters WHERE name = 'hits'").Scan(&got).Error; err != nil {
					t.Fatal(err)
				}
				if got != writers*each {
					t.Errorf("counter = %d, want %d", got, writers*each)
				}
			})
		})
	}
}

func TestOpenRejectsBadURLs(t *testing.T) {
	tests := []struct{ name, url string }{
		{"other scheme", "mysql://u@h/db"},
		{"no scheme", "order.db"},
		{"sqlite without path", "sqlite:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := database.Open(context.Background(), tt.url, discard())
			if !errors.Is(err, database.ErrUnsupportedURL) {
				t.Errorf("Open(%q) = %v, want ErrUnsupportedURL", tt.url, err)
			}
		})
	}
}

func TestOpenReportsUnreachablePostgres(t *testing.T) {
	// Port 1 on loopback: nothing listens there, so the ping must fail fast.
	_, err := database.Open(context.Background(), "postgres://postgres@127.0.0.1:1/x?sslmode=disable&connect_timeout=2", discard())
	if err == nil {
		t.Fatal("Open succeeded against a closed port")
	}
}

func TestOpenMigratedReportsABrokenMigration(t *testing.T) {
	broken := fstest.MapFS{"00001_broken.sql": {Data: []byte("-- +goose Up\nCREATE TABLE (;\n")}}
	url := "sqlite:" + filepath.Join(t.TempDir(), "broken.db")
	db, err := database.OpenMigrated(context.Background(), url, broken, discard())
	if err == nil {
		db.Close()
		t.Fatal("OpenMigrated succeeded with a broken migration")
	}
	db, err = database.OpenMigrated(context.Background(), url, migrations, discard())
	if err != nil {
		t.Fatalf("OpenMigrated with good migrations after a failed run: %v", err)
	}
	db.Close()
}
