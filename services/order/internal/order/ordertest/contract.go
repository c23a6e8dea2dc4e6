package ordertest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/order/internal/order"
)

// RunStoreContract runs the tests every order.Store must pass: its methods
// called directly, and the use cases of order.Service whose guarantees rest
// on it (idempotent creation under concurrency, keyset pagination, customer
// isolation). newStore must return an empty store each time it is called.
func RunStoreContract(t *testing.T, newStore func(t *testing.T) order.Store) {
	t.Run("Insert stores the order with its lines and history", func(t *testing.T) {
		store := newStore(t)
		o := newOrder(t, "alice", baseTime, line("MUG", 2, 1250), line("TSHIRT-RED-M", 1, 1999))

		stored, hash, err := store.Insert(t.Context(), o, order.Idempotency{Key: "k1", RequestHash: "h1"})
		if err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if diff := cmp.Diff(o, stored); diff != "" {
			t.Errorf("Insert returned another order (-want +got):\n%s", diff)
		}
		if hash != "h1" {
			t.Errorf("Insert returned request hash %q, want h1", hash)
		}
		got, err := store.Get(t.Context(), o.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if diff := cmp.Diff(o, got); diff != "" {
			t.Errorf("Get mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("Insert under a used key stores nothing and returns the first order", func(t *testing.T) {
		store := newStore(t)
		first := newOrder(t, "alice", baseTime, line("MUG", 1, 1250))
		second := newOrder(t, "alice", baseTime.Add(time.Second), line("CAP", 3, 900))
		mustInsert(t, store, first, order.Idempotency{Key: "k1", RequestHash: "h1"})

		stored, hash, err := store.Insert(t.Context(), second, order.Idempotency{Key: "k1", RequestHash: "h2"})
		if err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if diff := cmp.Diff(first, stored); diff != "" {
			t.Errorf("Insert returned (-want first order +got):\n%s", diff)
		}
		if hash != "h1" {
			t.Errorf("Insert returned request hash %q, want the first one, h1", hash)
		}
		if _, err := store.Get(t.Context(), second.ID); !errors.Is(err, order.ErrOrderNotFound) {
			t.Errorf("Get(second order) error = %v, want ErrOrderNotFound", err)
		}
	})

	t.Run("a key is per customer", func(t *testing.T) {
		store := newStore(t)
		alice := newOrder(t, "alice", baseTime, line("MUG", 1, 1250))
		bob := newOrder(t, "bob", baseTime, line("MUG", 1, 1250))
		mustInsert(t, store, alice, order.Idempotency{Key: "k1", RequestHash: "h"})
		stored, _, err := store.Insert(t.Context(), bob, order.Idempotency{Key: "k1", RequestHash: "h"})
		if err != nil {
			t.Fatalf("Insert: %v", err)
		}
		if stored.ID != bob.ID {
			t.Errorf("Insert of bob's order under alice's key returned order %s, want bob's own %s", stored.ID, bob.ID)
		}
	})

	t.Run("Get of an unknown id is ErrOrderNotFound", func(t *testing.T) {
		store := newStore(t)
		if _, err := store.Get(t.Context(), uuid.Must(uuid.NewV7()).String()); !errors.Is(err, order.ErrOrderNotFound) {
			t.Errorf("Get error = %v, want ErrOrderNotFound", err)
		}
	})

	t.Run("List pages newest first", func(t *testing.T) {
		store := newStore(t)
		// Three orders share an instant, so only their ids order them; two
		// fall on whole seconds, which SQLite writes without a fraction.
		wholeSecond := baseTime.Truncate(time.Second)
		same := baseTime.Add(time.Microsecond)
		var alices []order.Order
		for _, at := range []time.Time{wholeSecond, baseTime, same, same, same, wholeSecond.Add(time.Second), baseTime.Add(time.Hour)} {
			o := newOrder(t, "alice", at, line("MUG", 1, 1250), line("CAP", 2, 900))
			mustInsert(t, store, o, order.Idempotency{Key: o.ID, RequestHash: "h"})
			alices = append(alices, o)
		}
		bobs := newOrder(t, "bob", baseTime.Add(time.Minute), line("MUG", 1, 1250))
		mustInsert(t, store, bobs, order.Idempotency{Key: "k", RequestHash: "h"})
		// want: alice's orders newest first, as lists return them.
		want := make([]order.Order, len(alices))
		for i, o := range alices {
			want[i] = listed(o)
		}
		slices.SortFunc(want, func(a, b order.Order) int { return newerFirst(position(a), position(b)) })

		tests := []struct {
			name     string
			customer string
			after    order.Cursor
			limit    int
			want     []order.Order
		}{
			{"all", "alice", order.Cursor{}, 10, want},
			{"first page", "alice", order.Cursor{}, 2, want[:2]},
			{"after a cursor on a whole second", "alice", position(want[1]), 10, want[2:]},
			{"after a cursor amid equal instants", "alice", position(want[3]), 10, want[4:]},
			{"after the last order", "alice", position(want[6]), 10, nil},
			{"after a cursor at the latest time", "alice", order.Cursor{CreatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"}, 10, want},
			{"after a cursor at the earliest time", "alice", order.Cursor{CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), ID: "00000000-0000-0000-0000-000000000000"}, 10, nil},
			{"another customer's", "bob", order.Cursor{}, 10, []order.Order{listed(bobs)}},
			{"a customer without orders", "carol", order.Cursor{}, 10, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := store.List(t.Context(), tt.customer, tt.after, tt.limit)
				if err != nil {
					t.Fatalf("List: %v", err)
				}
				if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("List mismatch (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("Create is idempotent per customer and key", func(t *testing.T) {
		store := newStore(t)
		checkouts := NewCheckouts(store)
		svc := order.NewService(store, checkouts, NewClock(baseTime).Now)
		req := order.CreateRequest{CardNumber: TestCard, CustomerID: "alice", IdempotencyKey: "k1", Lines: []order.Line{line("MUG", 2, 1250), line("CAP", 1, 900)}}
		first, created, err := svc.Create(t.Context(), req)
		if err != nil || !created {
			t.Fatalf("first Create = created %v, %v; want a new order", created, err)
		}

		repricedLines := []order.Line{line("MUG", 2, 1300), line("CAP", 1, 800)}
		tests := []struct {
			name        string
			req         order.CreateRequest
			wantSame    bool // the first order comes back
			wantCreated bool
			wantErr     error
		}{
			{"same request", req, true, false, nil},
			{"same lines at new prices", withLines(req, repricedLines...), true, false, nil},
			{"other quantities", withLines(req, line("MUG", 3, 1250), line("CAP", 1, 900)), false, false, order.ErrIdempotencyConflict},
			{"lines in another order", withLines(req, req.Lines[1], req.Lines[0]), true, false, nil},
			{"another card", order.CreateRequest{CardNumber: "4000000000000002", CustomerID: "alice", IdempotencyKey: "k1", Lines: req.Lines}, false, false, order.ErrIdempotencyConflict},
			{"fewer lines", withLines(req, req.Lines[0]), false, false, order.ErrIdempotencyConflict},
			{"another customer", order.CreateRequest{CardNumber: TestCard, CustomerID: "bob", IdempotencyKey: "k1", Lines: req.Lines}, false, true, nil},
			{"another key", order.CreateRequest{CardNumber: TestCard, CustomerID: "alice", IdempotencyKey: "k2", Lines: req.Lines}, false, true, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, created, err := svc.Create(t.Context(), tt.req)
				if !errors.Is(err, tt.wantErr) || created != tt.wantCreated {
					t.Fatalf("Create = created %v, error %v; want created %v, error %v", created, err, tt.wantCreated, tt.wantErr)
				}
				if tt.wantSame {
					if diff := cmp.Diff(first, got); diff != "" {
						t.Errorf("Create did not return the first order (-want +got):\n%s", diff)
					}
				}
				if tt.wantCreated && (got.ID == first.ID || got.CustomerID != tt.req.CustomerID) {
					t.Errorf("Create returned order %s of %q, want a new order of %q", got.ID, got.CustomerID, tt.req.CustomerID)
				}
			})
		}
		// One checkout per order created: the first, bob's and the other key's.
		if n := len(checkouts.Started()); n != 3 {
			t.Errorf("checkouts started = %d, want 3: one per order created, none for a retry or a conflict", n)
		}
	})

	t.Run("concurrent creates with one key make one order", func(t *testing.T) {
		const goroutines = 24
		svc := newService(newStore(t), NewClock(baseTime).Now)
		// Half the requests ask for other lines under the same key: whichever
		// body wins, the others must be told apart from retries.
		reqs := [2]order.CreateRequest{
			{CardNumber: TestCard, CustomerID: "alice", IdempotencyKey: "once", Lines: []order.Line{line("MUG", 1, 1250)}},
			{CardNumber: TestCard, CustomerID: "alice", IdempotencyKey: "once", Lines: []order.Line{line("MUG", 2, 1250)}},
		}
		type result struct {
			body    int
			order   order.Order
			created bool
			err     error
		}
		results := make([]result, goroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range goroutines {
			wg.Go(func() {
				<-start
				o, created, err := svc.Create(t.Context(), reqs[i%2])
				results[i] = result{body: i % 2, order: o, created: created, err: err}
			})
		}
		close(start)
		wg.Wait()

		var winners []result
		for _, r := range results {
			if r.created {
				winners = append(winners, r)
			}
		}
		if len(winners) != 1 {
			t.Fatalf("%d creates reported created=true, want exactly 1", len(winners))
		}
		winner := winners[0]
		for i, r := range results {
			switch {
			case r.created:
			case r.body == winner.body && (r.err != nil || r.order.ID != winner.order.ID):
				t.Errorf("create %d (same body as the winner) = %s, %v; want the winner's order %s", i, r.order.ID, r.err, winner.order.ID)
			case r.body != winner.body && !errors.Is(r.err, order.ErrIdempotencyConflict):
				t.Errorf("create %d (other body) error = %v, want ErrIdempotencyConflict", i, r.err)
			}
		}
		orders, _, err := svc.List(t.Context(), "alice", order.MaxListLimit, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(orders) != 1 {
			t.Errorf("alice has %d orders, want 1", len(orders))
		}
	})

	t.Run("concurrent creates with distinct keys make one order each", func(t *testing.T) {
		const goroutines = 24
		svc := newService(newStore(t), NewClock(baseTime).Now)
		ids := make([]string, goroutines)
		errs := make([]error, goroutines)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range goroutines {
			wg.Go(func() {
				<-start
				req := order.CreateRequest{CardNumber: TestCard, CustomerID: "alice", IdempotencyKey: fmt.Sprint("key-", i), Lines: []order.Line{line("MUG", 1, 1250)}}
				o, _, err := svc.Create(t.Context(), req)
				ids[i], errs[i] = o.ID, err
			})
		}
		close(start)
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Create: %v", err)
		}
		orders, _, err := svc.List(t.Context(), "alice", order.MaxListLimit, "")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range orders {
			got = append(got, o.ID)
		}
		slices.Sort(ids)
		slices.Sort(got)
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("listed orders differ from created ones (-created +listed):\n%s", diff)
		}
	})

	t.Run("pages cover every order once, newest first", func(t *testing.T) {
		tests := []struct {
			orders, perInstant, limit int
		}{
			{orders: 23, perInstant: 4, limit: 5},
			{orders: 20, perInstant: 20, limit: 5}, // all in one instant, pages end exactly
			{orders: 3, perInstant: 1, limit: 100},
			{orders: 1, perInstant: 1, limit: 1},
			{orders: 0, perInstant: 1, limit: 1},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%d orders, %d per instant, %d per page", tt.orders, tt.perInstant, tt.limit), func(t *testing.T) {
				clock := NewClock(baseTime)
				svc := newService(newStore(t), clock.Now)
				var want []order.Order
				for i := range tt.orders {
					if i > 0 && i%tt.perInstant == 0 {
						clock.Advance(time.Millisecond)
					}
					want = append(want, listed(create(t, svc, "alice", fmt.Sprint("a", i))))
					create(t, svc, "bob", fmt.Sprint("b", i)) // interleaved, never listed
				}
				slices.SortFunc(want, func(a, b order.Order) int { return newerFirst(position(a), position(b)) })

				var got []order.Order
				cursor, pages := "", 0
				for {
					page, next, err := svc.List(t.Context(), "alice", tt.limit, cursor)
					if err != nil {
						t.Fatalf("List page %d: %v", pages+1, err)
					}
					pages++
					if len(page) > tt.limit {
						t.Fatalf("page %d has %d orders, more than the limit %d", pages, len(page), tt.limit)
					}
					got = append(got, page...)
					if next == "" {
						break
					}
					if pages > tt.orders {
						t.Fatalf("still paging after %d pages", pages)
					}
					cursor = next
				}
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("orders across pages (-want +got):\n%s", diff)
				}
				if wantPages := max(1, (tt.orders+tt.limit-1)/tt.limit); pages != wantPages {
					t.Errorf("took %d pages, want %d", pages, wantPages)
				}
			})
		}
	})

	t.Run("customers see only their own orders", func(t *testing.T) {
		svc := newService(newStore(t), NewClock(baseTime).Now)
		alices := create(t, svc, "alice", "k1")
		bobs := create(t, svc, "bob", "k1")

		tests := []struct {
			name, id, customer string
			wantErr            error
		}{
			{"own order", alices.ID, "alice", nil},
			{"another customer's order", bobs.ID, "alice", order.ErrOrderNotFound},
			{"any customer's order, for operators", bobs.ID, "", nil},
			{"a customer id that differs only in case", alices.ID, "Alice", order.ErrOrderNotFound},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := svc.Get(t.Context(), tt.id, tt.customer)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get error = %v, want %v", err, tt.wantErr)
				}
				if err == nil && got.ID != tt.id {
					t.Errorf("Get returned order %s, want %s", got.ID, tt.id)
				}
			})
		}
		orders, _, err := svc.List(t.Context(), "alice", order.MaxListLimit, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(orders) != 1 || orders[0].ID != alices.ID {
			t.Errorf("alice's list = %v, want only her order %s", orders, alices.ID)
		}
	})

	t.Run("text a database would refuse is refused before it", func(t *testing.T) {
		svc := newService(newStore(t), NewClock(baseTime).Now)
		existing := create(t, svc, "alice", "k1")
		var invalid *order.ValidationError
		tests := []struct {
			name string
			call func() error
			want func(error) bool
		}{
			{"NUL in a new order's customer id", func() error {
				_, _, err := svc.Create(t.Context(), order.CreateRequest{CardNumber: TestCard, CustomerID: "a\x00b", IdempotencyKey: "k", Lines: []order.Line{line("MUG", 1, 1)}})
				return err
			}, func(err error) bool { return errors.As(err, &invalid) }},
			{"invalid UTF-8 in a listed customer id", func() error {
				_, _, err := svc.List(t.Context(), "\xff", 10, "")
				return err
			}, func(err error) bool { return errors.As(err, &invalid) }},
			{"NUL in an order id", func() error {
				_, err := svc.Get(t.Context(), "\x00", "")
				return err
			}, func(err error) bool { return errors.Is(err, order.ErrOrderNotFound) }},
			{"NUL in the customer id of a read", func() error {
				_, err := svc.Get(t.Context(), existing.ID, "\x00")
				return err
			}, func(err error) bool { return errors.Is(err, order.ErrOrderNotFound) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if err := tt.call(); !tt.want(err) {
					t.Errorf("error = %v, want a client error", err)
				}
			})
		}
	})
}

// baseTime has microsecond precision, what every store keeps.
var baseTime = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// listed returns o as lists return it: without history.
func listed(o order.Order) order.Order {
	o.History = nil
	return o
}

func line(sku string, quantity, unitPrice int64) order.Line {
	return order.Line{SKU: sku, Quantity: quantity, UnitPrice: money.Amount{Minor: unitPrice, Currency: "EUR"}}
}

func withLines(req order.CreateRequest, lines ...order.Line) order.CreateRequest {
	req.Lines = lines
	return req
}

// newOrder returns a PENDING order as Service.Create would make it.
func newOrder(t *testing.T, customerID string, at time.Time, lines ...order.Line) order.Order {
	t.Helper()
	var total money.Amount
	for _, l := range lines {
		amount, err := l.UnitPrice.Mul(l.Quantity)
		if err == nil {
			total, err = total.Add(amount)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return order.Order{
		ID:         uuid.Must(uuid.NewV7()).String(),
		CustomerID: customerID,
		Status:     order.StatusPending,
		Lines:      lines,
		Total:      total,
		CreatedAt:  at,
		UpdatedAt:  at,
		History:    []order.StatusChange{{Status: order.StatusPending, Reason: "order placed", At: at}},
	}
}

func mustInsert(t *testing.T, store order.Store, o order.Order, idem order.Idempotency) {
	t.Helper()
	if stored, _, err := store.Insert(t.Context(), o, idem); err != nil || stored.ID != o.ID {
		t.Fatalf("Insert = order %s, %v; want order %s stored", stored.ID, err, o.ID)
	}
}

// create places a one-line order through svc.
func create(t *testing.T, svc *order.Service, customerID, key string) order.Order {
	t.Helper()
	o, created, err := svc.Create(t.Context(), order.CreateRequest{CardNumber: TestCard, CustomerID: customerID, IdempotencyKey: key, Lines: []order.Line{line("MUG", 1, 1250)}})
	if err != nil || !created {
		t.Fatalf("Create = created %v, %v; want a new order", created, err)
	}
	return o
}

// newService returns the use cases on store, with checkouts recorded by a
// Checkouts instead of started.
func newService(store order.Store, now func() time.Time) *order.Service {
	return order.NewService(store, NewCheckouts(store), now)
}
