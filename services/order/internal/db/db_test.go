package db

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/internal/order/ordertest"
	"github.com/microshop/microshop/services/order/migrations"
)

// TestStore runs the order.Store contract against real SQLite and PostgreSQL
// databases, a fresh migrated one per subtest.
func TestStore(t *testing.T) {
	for name, newDB := range databases(t) {
		t.Run(name, func(t *testing.T) {
			ordertest.RunStoreContract(t, func(t *testing.T) order.Store { return NewStore(newDB(t)) })
		})
	}
}

// TestInsertLosingTheRace checks that insert under a taken key writes
// nothing and reports it, leaving the stored order as it was: the path of a
// retry, and of the loser of two concurrent requests, which the contract's
// concurrency tests reach only by chance.
func TestInsertLosingTheRace(t *testing.T) {
	for name, newDB := range databases(t) {
		t.Run(name, func(t *testing.T) {
			s := NewStore(newDB(t))
			idem := order.Idempotency{Key: "k1", RequestHash: "h1"}
			winner, loser := newOrder(), newOrder()

			if inserted, err := s.insert(t.Context(), winner, idem); err != nil || !inserted {
				t.Fatalf("first insert = %v, %v; want true, nil", inserted, err)
			}
			if inserted, err := s.insert(t.Context(), loser, idem); err != nil || inserted {
				t.Fatalf("insert under a taken key = %v, %v; want false, nil", inserted, err)
			}
			if _, err := s.Get(t.Context(), loser.ID); !errors.Is(err, order.ErrOrderNotFound) {
				t.Errorf("Get(loser) error = %v, want ErrOrderNotFound: nothing of it may be written", err)
			}
			got, err := s.Get(t.Context(), winner.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(winner, got); diff != "" {
				t.Errorf("winner's order changed (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAddHistory checks that the rows of one AddHistory, and of the calls
// after it, follow the history in order, with the order's status at the
// time: one statement numbers several rows.
func TestAddHistory(t *testing.T) {
	for name, newDB := range databases(t) {
		t.Run(name, func(t *testing.T) {
			s := NewStore(newDB(t))
			o := newOrder()
			if inserted, err := s.insert(t.Context(), o, order.Idempotency{Key: "k1", RequestHash: "h1"}); err != nil || !inserted {
				t.Fatalf("insert = %v, %v; want true, nil", inserted, err)
			}
			at := o.CreatedAt.Add(time.Second)
			if err := s.AddHistory(t.Context(), o.ID, at, "a succeeded", "b started"); err != nil {
				t.Fatal(err)
			}
			if err := s.AddHistory(t.Context(), o.ID, at, "b succeeded"); err != nil {
				t.Fatal(err)
			}
			done := at.Add(time.Second)
			if err := s.Finish(t.Context(), o.ID, order.StatusConfirmed, "", "order confirmed", done); err != nil {
				t.Fatal(err)
			}
			if err := s.AddHistory(t.Context(), uuid.Must(uuid.NewV7()).String(), at, "x"); !errors.Is(err, order.ErrOrderNotFound) {
				t.Errorf("AddHistory of a missing order error = %v, want ErrOrderNotFound", err)
			}
			got, err := s.Get(t.Context(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := []order.StatusChange{
				{Status: order.StatusPending, Reason: "order placed", At: o.CreatedAt},
				{Status: order.StatusPending, Reason: "a succeeded", At: at},
				{Status: order.StatusPending, Reason: "b started", At: at},
				{Status: order.StatusPending, Reason: "b succeeded", At: at},
				{Status: order.StatusConfirmed, Reason: "order confirmed", At: done},
			}
			if diff := cmp.Diff(want, got.History); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
		})
	}
}

// databases returns, per engine, a function that opens a fresh migrated
// database.
func databases(t *testing.T) map[string]func(t *testing.T) *database.DB {
	cluster := pgtest.Start(t)
	return map[string]func(t *testing.T) *database.DB{
		database.SQLite: func(t *testing.T) *database.DB {
			return openMigrated(t, "sqlite:"+filepath.Join(t.TempDir(), "order.db"))
		},
		database.Postgres: func(t *testing.T) *database.DB { return openMigrated(t, pgtest.NewDatabase(t, cluster)) },
	}
}

func openMigrated(t *testing.T, url string) *database.DB {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	d, err := database.Open(ctx, url, log)
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("close database: %v", err)
		}
	})
	if err := database.Migrate(ctx, d, migrations.FS, log); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return d
}

func newOrder() order.Order {
	at := time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)
	return order.Order{
		ID:         uuid.Must(uuid.NewV7()).String(),
		CustomerID: "alice",
		Status:     order.StatusPending,
		Lines:      []order.Line{{SKU: "MUG", Quantity: 2, UnitPrice: money.Amount{Minor: 1250, Currency: "EUR"}}},
		Total:      money.Amount{Minor: 2500, Currency: "EUR"},
		CreatedAt:  at,
		UpdatedAt:  at,
		History:    []order.StatusChange{{Status: order.StatusPending, Reason: "order placed", At: at}},
	}
}
