package invariants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/database"
)

// OpenDatabases opens the three services' databases, by service name in
// urls (order, inventory, payment).
func OpenDatabases(ctx context.Context, urls map[string]string) (Databases, func(), error) {
	var d Databases
	var opened []*database.DB
	closeAll := func() {
		for _, db := range opened {
			_ = db.Close()
		}
	}
	log := slog.New(slog.DiscardHandler)
	for name, db := range map[string]**sql.DB{"order": &d.Order, "inventory": &d.Inventory, "payment": &d.Payment} {
		conn, err := database.Open(ctx, urls[name], log)
		if err != nil {
			closeAll()
			return d, nil, fmt.Errorf("open the %s database: %w", name, err)
		}
		opened = append(opened, conn)
		if *db, err = conn.DB.DB(); err != nil {
			closeAll()
			return d, nil, fmt.Errorf("open the %s database: %w", name, err)
		}
	}
	return d, closeAll, nil
}

// InFlight lists what is not settled yet: orders, reservations, payments
// and refunds PENDING, sagas running or compensating, outbox rows not sent,
// commands and replies not consumed. The stack is quiet when it is empty.
func InFlight(ctx context.Context, d Databases, kc *kafka.Client) ([]string, error) {
	var busy []string
	for _, q := range []struct {
		what string
		db   *sql.DB
		sql  string
	}{
		{"orders PENDING", d.Order, "SELECT count(*) FROM orders WHERE status = 'PENDING'"},
		{"sagas in flight", d.Order, "SELECT count(*) FROM saga_instances WHERE status IN ('RUNNING', 'COMPENSATING')"},
		{"reservations PENDING", d.Inventory, "SELECT count(*) FROM reservations WHERE status = 'PENDING'"},
		{"payments PENDING", d.Payment, "SELECT count(*) FROM payments WHERE status = 'PENDING'"},
		{"refunds PENDING", d.Payment, "SELECT count(*) FROM refunds WHERE status = 'PENDING'"},
	} {
		n, err := count(ctx, q.db, q.sql)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			busy = append(busy, fmt.Sprintf("%d %s", n, q.what))
		}
	}
	err := d.each(func(service string, db *sql.DB) error {
		n, err := unsentOutbox(ctx, db)
		if n > 0 {
			busy = append(busy, fmt.Sprintf("%d unsent in %s's outbox", n, service))
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	lag, err := consumerLag(ctx, kc)
	if err != nil {
		return nil, err
	}
	for _, group := range slices.Sorted(maps.Keys(lag)) {
		if lag[group] > 0 {
			busy = append(busy, fmt.Sprintf("consumer group %s lags %d", group, lag[group]))
		}
	}
	return busy, nil
}

// Shop is what a run sells and to whom, read before the run.
type Shop struct {
	// Catalog is every product's price and available stock.
	Catalog map[string]Product
	// Plenty are the products with more than lowStock units, restocked so
	// that the run does not sell them out; Low the others.
	Plenty, Low []string
	// Customers are the users the orders are placed as (alice and bob).
	Customers []Customer
}

// Prepare logs in, restocks the plentiful products with two units per order
// the run will place, and reads the catalog, prices and stock, before the
// run.
func Prepare(ctx context.Context, c *Client, d Databases, orders int) (Shop, error) {
	var shop Shop
	catalog, err := c.Catalog(ctx)
	if err != nil {
		return shop, err
	}
	for sku, p := range catalog {
		if p.Available > lowStock {
			shop.Plenty = append(shop.Plenty, sku)
		} else {
			shop.Low = append(shop.Low, sku)
		}
	}
	slices.Sort(shop.Plenty)
	slices.Sort(shop.Low)
	if len(shop.Plenty) == 0 {
		return shop, errors.New("no product with stock to sell")
	}
	admin, err := c.Login(ctx, "admin")
	if err != nil {
		return shop, err
	}
	for _, user := range []string{"alice", "bob"} {
		cu, err := c.Login(ctx, user)
		if err != nil {
			return shop, err
		}
		shop.Customers = append(shop.Customers, cu)
	}
	if err := c.Restock(ctx, admin.Token, shop.Plenty, int64(2*orders)); err != nil {
		return shop, err
	}
	if shop.Catalog, err = c.Catalog(ctx); err != nil {
		return shop, err
	}
	// The stock the catalog shows is all there is only if nothing is held.
	held, err := count(ctx, d.Inventory, "SELECT count(*) FROM stock WHERE reserved <> 0")
	if err != nil {
		return shop, err
	}
	if held != 0 {
		return shop, fmt.Errorf("%d products have stock reserved before the run", held)
	}
	return shop, nil
}

// WarmUp places orders of the shop's first plentiful product as its first
// customer with a good card, one at a time, until one is CONFIRMED: the
// consumer groups have settled and the saga works before any fault is
// injected. It records the orders it placed in truth.
func WarmUp(ctx context.Context, c *Client, d Databases, shop Shop, seed uint64, timeout time.Duration, truth GroundTruth) error {
	cu, sku := shop.Customers[0], shop.Plenty[0]
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := 0; ; i++ {
		co := Checkout{key: fmt.Sprintf("chaos-%d-warmup-%d", seed, i), card: cardSucceeds, sku: sku, quantity: 1, customerID: cu.ID}
		truth.Requests[co.key] = co
		var o struct{ ID string }
		body := map[string]any{"card_number": co.card, "lines": []map[string]any{{"sku": co.sku, "quantity": co.quantity}}}
		if _, err := c.Retry(ctx, http.MethodPost, "/api/v1/orders", cu.Token, co.key, body, &o); err != nil {
			return fmt.Errorf("warm-up order: %w", err)
		}
		truth.Answered[o.ID] = co.key
		var status string
		err := Poll(ctx, timeout, func() bool {
			return d.Order.QueryRowContext(ctx, "SELECT status FROM orders WHERE id = $1", o.ID).Scan(&status) == nil && status != "PENDING"
		})
		if err != nil {
			return fmt.Errorf("warm-up order %s still %s: %w", o.ID, status, err)
		}
		if status == "CONFIRMED" {
			return nil
		}
	}
}

// Poll calls cond every 200ms until it holds or timeout passes.
func Poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// AwaitQuiet waits until InFlight finds nothing and then for at least
// window more, so that whatever still waits for a retry backoff shows up; it
// fails if that takes longer than timeout, saying what was still busy. It
// returns how long it waited.
func AwaitQuiet(ctx context.Context, d Databases, kc *kafka.Client, window, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	last := "nothing read yet"
	err := Poll(ctx, timeout, func() bool {
		busy, err := InFlight(ctx, d, kc)
		switch {
		case err != nil:
			last = err.Error()
		case len(busy) > 0:
			last = strings.Join(busy, ", ")
		default:
			last = "quiet"
			return time.Since(start) >= window
		}
		return false
	})
	if err != nil {
		return time.Since(start), fmt.Errorf("not quiet within %s: %s", timeout, last)
	}
	return time.Since(start), nil
}

// Sources are where Verify reads what a run left behind.
type Sources struct {
	Databases Databases
	// PSP is the PSP simulator's base URL: its admin listings of charges
	// and refunds are the ground truth of the money.
	PSP string
	// Kafka reaches the broker, for the dead-letter topics.
	Kafka *kafka.Client
}

// Verify reads the snapshot — the PSP's records, the dead-letter topics, the
// databases — and judges it against truth: I1–I4 by Check, then I5 by
// ProveStockChecks, whose violations join the result's. Stop the service
// replicas first so that nothing changes while it reads. An error means the
// snapshot could not be read; the verdict is in the result.
func Verify(ctx context.Context, src Sources, truth GroundTruth) (*Result, error) {
	snap := &Snapshot{}
	if err := readPSP(ctx, src.PSP, snap); err != nil {
		return nil, fmt.Errorf("read the PSP: %w", err)
	}
	if err := readDeadLetters(ctx, src.Kafka, snap); err != nil {
		return nil, fmt.Errorf("read the dead letters: %w", err)
	}
	if err := readDatabases(ctx, src.Databases, snap); err != nil {
		return nil, fmt.Errorf("read the databases: %w", err)
	}
	r := Check(truth, snap)
	i5, err := ProveStockChecks(ctx, src.Databases.Inventory)
	if err != nil {
		return r, err
	}
	r.Violations = append(r.Violations, i5...)
	return r, nil
}

// Unread lists the tables of TablesNeeded the result read no rows of: a run
// meant to exercise every path that leaves one empty read the wrong place,
// or proved less than it claims.
func (r *Result) Unread() []string {
	var empty []string
	for _, table := range TablesNeeded {
		if r.Tables[table] == 0 {
			empty = append(empty, table)
		}
	}
	return empty
}
