package invariants

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	inventorymigrations "github.com/microshop/microshop/services/inventory/migrations"
	ordermigrations "github.com/microshop/microshop/services/order/migrations"
	paymentmigrations "github.com/microshop/microshop/services/payment/migrations"
	"github.com/microshop/microshop/services/psp/simulator"
)

// world is what a chaos run leaves behind, made by hand: the three
// services' real databases, migrated as the services migrate them, and a
// PSP simulator in-process, read back the way a run reads them. It starts
// with a small, consistent checkout history; each mutation test corrupts
// it one way and wants the checker to say so.
type world struct {
	t     *testing.T
	ctx   context.Context
	d     Databases
	sim   *simulator.Simulator
	psp   string // the simulator's base URL
	truth GroundTruth
}

// Products of the seeded demo catalog the worlds sell.
const (
	skuMug        = "MUG-CLASSIC" // 1290 EUR, 50 in stock
	skuPen        = "PEN-GEL-SET" // 890 EUR, 80 in stock
	skuEnamel     = "MUG-ENAMEL"  // 1490 EUR, 1 in stock
	customerAlice = "cus_alice"
)

func newWorld(t *testing.T, cluster *pgcluster.Cluster) *world {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	w := &world{t: t, ctx: ctx, sim: simulator.New(simulator.Settings{}),
		truth: GroundTruth{Catalog: map[string]Product{}, Requests: map[string]Checkout{}, Answered: map[string]string{}}}
	srv := httptest.NewServer(w.sim.Handler())
	t.Cleanup(srv.Close)
	w.psp = srv.URL
	open := func(own fs.FS, shared ...func(context.Context, *database.DB, *slog.Logger) error) *sql.DB {
		db, err := database.OpenMigrated(ctx, pgtest.NewDatabase(t, cluster), own, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for _, migrate := range shared {
			if err := migrate(ctx, db, log); err != nil {
				t.Fatal(err)
			}
		}
		sqlDB, err := db.DB.DB()
		if err != nil {
			t.Fatal(err)
		}
		return sqlDB
	}
	w.d.Order = open(ordermigrations.FS, outbox.Migrate, saga.MigrateOrchestrator)
	w.d.Inventory = open(inventorymigrations.FS, outbox.Migrate, saga.MigrateBarrier)
	w.d.Payment = open(paymentmigrations.FS, outbox.Migrate, saga.MigrateBarrier)

	// The catalog before the run, as the harness reads it from the API.
	err := query(ctx, w.d.Inventory, "SELECT p.sku, p.price_minor, p.currency, s.available FROM products p JOIN stock s ON s.sku = p.sku",
		func(scan func(...any) error) error {
			var p Product
			err := scan(&p.SKU, &p.Price.Amount, &p.Price.Currency, &p.Available)
			w.truth.Catalog[p.SKU] = p
			return err
		})
	if err != nil {
		t.Fatal(err)
	}

	// Confirmed: two mugs, charged, stock sold.
	w.order("o1", "k1", "CONFIRMED", "", skuMug, 2, 1290)
	w.reserve("o1", skuMug, 2, "COMMITTED")
	w.pay("o1", 2580, simulator.CardSucceeds)
	// Cancelled after the charge: refunded, stock released.
	w.order("o2", "k2", "CANCELLED", "commit-reservation: timed out", skuPen, 1, 890)
	w.reserve("o2", skuPen, 1, "RELEASED")
	w.refund("o2", w.pay("o2", 890, simulator.CardSucceeds), 890)
	// Cancelled on a declined card.
	w.order("o3", "k3", "CANCELLED", "charge-payment: card_declined", skuPen, 1, 890)
	w.reserve("o3", skuPen, 1, "RELEASED")
	w.pay("o3", 890, simulator.CardDeclined)
	// Cancelled for want of stock.
	w.order("o4", "k4", "CANCELLED", "reserve-stock: insufficient stock of MUG-ENAMEL: 2 requested, 1 available", skuEnamel, 2, 1490)
	w.barrier("inventory", "o4", checkoutv1.StepReserveStock, "action", "action")
	return w
}

// exec runs statements on db, failing the test on error.
func (w *world) exec(db *sql.DB, sql string, args ...any) {
	w.t.Helper()
	if _, err := db.ExecContext(w.ctx, sql, args...); err != nil {
		w.t.Fatalf("%s: %v", sql, err)
	}
}

// order records a checkout the harness asked for and the gateway answered,
// and the order the order service made of it, with its finished saga.
func (w *world) order(id, key, status, reason, sku string, quantity, unitPrice int64) {
	w.t.Helper()
	w.truth.Requests[key] = Checkout{key: key, sku: sku, quantity: quantity, card: simulator.CardSucceeds, customerID: customerAlice}
	w.truth.Answered[id] = key
	w.exec(w.d.Order, `INSERT INTO orders (id, customer_id, status, total_minor, currency, cancel_reason, idempotency_key, request_hash, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'EUR', $5, $6, 'hash', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`,
		id, customerAlice, status, quantity*unitPrice, reason, key)
	w.exec(w.d.Order, `INSERT INTO order_lines (order_id, line_no, sku, quantity, unit_price_minor) VALUES ($1, 0, $2, $3, $4)`,
		id, sku, quantity, unitPrice)
	sagaStatus := map[string]string{"PENDING": "RUNNING", "CONFIRMED": "COMPLETED", "CANCELLED": "FAILED"}[status]
	w.saga(id, sagaStatus)
}

func (w *world) saga(id, status string) {
	w.t.Helper()
	due := "NULL"
	if status == "RUNNING" || status == "COMPENSATING" {
		due = "CURRENT_TIMESTAMP"
	}
	w.exec(w.d.Order, `INSERT INTO saga_instances (id, definition, data, status, step, attempt, due_at, version, created_at, updated_at)
		VALUES ($1, 'checkout', '{}', $2, 0, 1, `+due+`, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, id, status)
}

// reserve records inventory's reservation of an order and moves the stock
// as its status says: COMMITTED sold, PENDING held, else back on sale; and
// the barrier rows of the operations that got it there.
func (w *world) reserve(orderID, sku string, quantity int64, status string) {
	w.t.Helper()
	id := "res-" + orderID
	w.exec(w.d.Inventory, `INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at)
		VALUES ($1, $2, $3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`, id, orderID, status)
	w.exec(w.d.Inventory, `INSERT INTO reservation_lines (reservation_id, sku, quantity) VALUES ($1, $2, $3)`, id, sku, quantity)
	switch status {
	case "COMMITTED":
		w.exec(w.d.Inventory, `UPDATE stock SET available = available - $1 WHERE sku = $2`, quantity, sku)
	case "PENDING":
		w.exec(w.d.Inventory, `UPDATE stock SET available = available - $1, reserved = reserved + $1 WHERE sku = $2`, quantity, sku)
	}
	w.barrier("inventory", orderID, checkoutv1.StepReserveStock, "action", "action")
	switch status {
	case "COMMITTED":
		w.barrier("inventory", orderID, checkoutv1.StepCommitReservation, "action", "action")
	case "RELEASED":
		w.barrier("inventory", orderID, checkoutv1.StepReserveStock, "compensate", "compensate")
	}
}

func (w *world) barrier(service, sagaID, step, op, insertedBy string) {
	w.t.Helper()
	db := map[string]*sql.DB{"inventory": w.d.Inventory, "payment": w.d.Payment}[service]
	w.exec(db, `INSERT INTO saga_barrier (saga_id, step, op, inserted_by, created_at) VALUES ($1, $2, $3, $4, CURRENT_TIMESTAMP)`,
		sagaID, step, op, insertedBy)
}

// pay charges card at the PSP under the order's charge key and records the
// payment as payment does; it returns the PSP's charge.
func (w *world) pay(orderID string, amount int64, card string) simulator.Charge {
	w.t.Helper()
	ch := w.payUnder(orderID, checkoutv1.ChargeKey(orderID), "pay-"+orderID, amount, card)
	w.barrier("payment", orderID, checkoutv1.StepChargePayment, "action", "action")
	return ch
}

func (w *world) payUnder(orderID, key, paymentID string, amount int64, card string) simulator.Charge {
	w.t.Helper()
	ch, _, err := w.sim.Charge(key, simulator.ChargeRequest{Amount: amount, Currency: "EUR", CardNumber: card})
	if err != nil {
		w.t.Fatal(err)
	}
	status, reference, reason := "CAPTURED", ch.ID, ""
	if ch.Status != simulator.StatusSucceeded {
		status, reference, reason = "FAILED", "", ch.DeclineCode
	}
	w.exec(w.d.Payment, `INSERT INTO payments (id, order_id, amount_minor, currency, status, psp_reference, failure_reason, idempotency_key, created_at, updated_at)
		VALUES ($1, $2, $3, 'EUR', $4, $5, $6, $7, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`,
		paymentID, orderID, amount, status, reference, reason, key)
	return ch
}

// refund refunds a charge at the PSP under the order's refund key and
// records it as payment does.
func (w *world) refund(orderID string, ch simulator.Charge, amount int64) {
	w.t.Helper()
	rf, _, err := w.sim.Refund(checkoutv1.RefundKey(orderID), simulator.RefundRequest{ChargeID: ch.ID, Amount: amount})
	if err != nil {
		w.t.Fatal(err)
	}
	w.exec(w.d.Payment, `INSERT INTO refunds (id, payment_id, amount_minor, currency, status, psp_reference, idempotency_key, created_at, updated_at)
		VALUES ($1, $2, $3, 'EUR', 'SUCCEEDED', $4, $5, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`,
		"ref-"+orderID, "pay-"+orderID, amount, rf.ID, checkoutv1.RefundKey(orderID))
	w.exec(w.d.Payment, `UPDATE payments SET refunded_minor = refunded_minor + $1 WHERE id = $2`, amount, "pay-"+orderID)
	w.barrier("payment", orderID, checkoutv1.StepChargePayment, "compensate", "compensate")
}

// check reads the world as a run reads its stack and checks it.
func (w *world) check() *Result {
	w.t.Helper()
	s := &Snapshot{deadLetters: map[string]int64{}}
	if err := readPSP(w.ctx, w.psp, s); err != nil {
		w.t.Fatal(err)
	}
	if err := readDatabases(w.ctx, w.d, s); err != nil {
		w.t.Fatal(err)
	}
	return Check(w.truth, s)
}

// TestCheckConsistentWorld: the untouched world has no violation, and the
// faults it holds (a refund, a stock refusal) are counted. Without it a
// mutation test could pass on a checker that reports everything.
func TestCheckConsistentWorld(t *testing.T) {
	w := newWorld(t, pgtest.Start(t))
	r := w.check()
	if len(r.Violations) > 0 {
		t.Fatalf("violations in a consistent world:\n%s", strings.Join(r.Violations, "\n"))
	}
	if r.Statuses["CONFIRMED"] != 1 || r.Statuses["CANCELLED"] != 3 || r.PSPRefunds != 1 || r.InsufficientStock != 1 {
		t.Errorf("statuses %v, %d PSP refunds, %d insufficient-stock cancellations; want 1 confirmed, 3 cancelled, 1, 1",
			r.Statuses, r.PSPRefunds, r.InsufficientStock)
	}
	for _, table := range []string{"orders", "order_lines", "saga_instances", "reservations", "reservation_lines", "payments", "refunds",
		"inventory.saga_barrier", "payment.saga_barrier", "psp charges", "psp refunds"} {
		if r.Tables[table] == 0 {
			t.Errorf("rows read of %s = 0, want some", table)
		}
	}
}

// TestCheckCatchesPlantedViolations plants, for each invariant, the
// violation it exists to catch in real databases and PSP records, and
// wants the checker to report it.
func TestCheckCatchesPlantedViolations(t *testing.T) {
	cluster := pgtest.Start(t)
	tests := []struct {
		name  string
		plant func(w *world)
		want  string // a violation containing this
	}{
		{"a second charge under a new key", func(w *world) {
			if _, _, err := w.sim.Charge("o1:charge-retry", simulator.ChargeRequest{Amount: 2580, Currency: "EUR", CardNumber: simulator.CardSucceeds}); err != nil {
				w.t.Fatal(err)
			}
		}, `I4: order o1: 2 PSP charges (2 succeeded)`},
		{"a charge under a new key the payment references", func(w *world) {
			ch, _, err := w.sim.Charge("retry-7f3a", simulator.ChargeRequest{Amount: 2580, Currency: "EUR", CardNumber: simulator.CardSucceeds})
			if err != nil {
				w.t.Fatal(err)
			}
			w.exec(w.d.Payment, `UPDATE payments SET psp_reference = $1 WHERE id = 'pay-o1'`, ch.ID)
		}, `I4: order o1: 2 PSP charges`},
		{"a charge no order owns", func(w *world) {
			if _, _, err := w.sim.Charge("stray", simulator.ChargeRequest{Amount: 500, Currency: "EUR", CardNumber: simulator.CardSucceeds}); err != nil {
				w.t.Fatal(err)
			}
		}, `orphan: PSP charge`},
		{"a charge for an order not in the database", func(w *world) {
			if _, _, err := w.sim.Charge(checkoutv1.ChargeKey("o-ghost"), simulator.ChargeRequest{Amount: 500, Currency: "EUR", CardNumber: simulator.CardSucceeds}); err != nil {
				w.t.Fatal(err)
			}
		}, `of order o-ghost, which the order database lacks`},
		{"a refund under another order's key", func(w *world) {
			ch := w.payUnder("o3", checkoutv1.ChargeKey("o3")+"x", "pay-o3x", 890, simulator.CardSucceeds)
			if _, _, err := w.sim.Refund(checkoutv1.RefundKey("o1"), simulator.RefundRequest{ChargeID: ch.ID, Amount: 890}); err != nil {
				w.t.Fatal(err)
			}
		}, `not the order's refund key`},
		{"a reservation of the wrong quantity", func(w *world) {
			w.exec(w.d.Inventory, `UPDATE reservation_lines SET quantity = 1 WHERE reservation_id = 'res-o1'`)
			w.exec(w.d.Inventory, `UPDATE stock SET available = available + 1 WHERE sku = $1`, skuMug)
		}, `I2: order o1: reservation res-o1 holds map[MUG-CLASSIC:1], but the checkout asked for map[MUG-CLASSIC:2]`},
		{"stock taken twice for one reservation", func(w *world) {
			w.exec(w.d.Inventory, `UPDATE stock SET available = available - 2 WHERE sku = $1`, skuMug)
		}, `I2: product MUG-CLASSIC: initial`},
		{"a confirmed order's stock not sold", func(w *world) {
			w.exec(w.d.Inventory, `UPDATE reservations SET status = 'RELEASED' WHERE id = 'res-o1'`)
			w.exec(w.d.Inventory, `UPDATE stock SET available = available + 2 WHERE sku = $1`, skuMug)
		}, `I2: order o1: CONFIRMED but its reservation is RELEASED`},
		{"a cancelled order's stock sold", func(w *world) {
			w.exec(w.d.Inventory, `UPDATE reservations SET status = 'COMMITTED' WHERE id = 'res-o2'`)
			w.exec(w.d.Inventory, `UPDATE stock SET available = available - 1 WHERE sku = $1`, skuPen)
		}, `I2: order o2: CANCELLED but its reservation is COMMITTED`},
		{"a confirmed order priced wrong", func(w *world) {
			// Wrong everywhere the services write it: order, payment and PSP agree on 1000.
			w.order("o5", "k5", "CONFIRMED", "", skuMug, 1, 1000)
			w.reserve("o5", skuMug, 1, "COMMITTED")
			w.pay("o5", 1000, simulator.CardSucceeds)
		}, `I3: order o5: CONFIRMED at catalog total 1290, but the PSP holds 1000`},
		{"a cancelled order not refunded", func(w *world) {
			w.order("o5", "k5", "CANCELLED", "commit-reservation: timed out", skuPen, 1, 890)
			w.reserve("o5", skuPen, 1, "RELEASED")
			w.pay("o5", 890, simulator.CardSucceeds)
		}, `I3: order o5: CANCELLED at catalog total 890, but the PSP holds 890`},
		{"a refund the payment database lacks", func(w *world) {
			w.exec(w.d.Payment, `DELETE FROM refunds`)
			w.exec(w.d.Payment, `UPDATE payments SET refunded_minor = 0`)
		}, `I3: order o2: the payment database has 0 refunded, the PSP 890`},
		{"an orphan payment", func(w *world) {
			w.exec(w.d.Payment, `INSERT INTO payments (id, order_id, amount_minor, currency, status, idempotency_key, created_at, updated_at)
				VALUES ('pay-ghost', 'o-ghost', 500, 'EUR', 'FAILED', 'o-ghost:charge', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
		}, `orphan: payment pay-ghost (FAILED, 500) of order o-ghost`},
		{"an orphan reservation", func(w *world) {
			w.exec(w.d.Inventory, `INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at)
				VALUES ('res-ghost', 'o-ghost', 'RELEASED', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
		}, `orphan: reservation res-ghost (RELEASED) of order o-ghost`},
		{"a second payment for one order", func(w *world) {
			w.exec(w.d.Payment, `INSERT INTO payments (id, order_id, amount_minor, currency, status, failure_reason, idempotency_key, created_at, updated_at)
				VALUES ('pay-o3-again', 'o3', 890, 'EUR', 'FAILED', 'card_declined', 'o3:charge:2', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
		}, `I4: order o3: 2 payments`},
		{"a stuck PENDING refund", func(w *world) {
			w.exec(w.d.Payment, `UPDATE refunds SET status = 'PENDING' WHERE id = 'ref-o2'`)
		}, `stuck: refund ref-o2 of payment pay-o2 still PENDING`},
		{"a stuck PENDING payment", func(w *world) {
			w.exec(w.d.Payment, `UPDATE payments SET status = 'PENDING', psp_reference = '', failure_reason = '' WHERE id = 'pay-o3'`)
		}, `stuck: payment pay-o3 of order o3 still PENDING`},
		{"a stuck PENDING reservation", func(w *world) {
			w.exec(w.d.Inventory, `UPDATE reservations SET status = 'PENDING' WHERE id = 'res-o3'`)
			w.exec(w.d.Inventory, `UPDATE stock SET available = available - 1, reserved = reserved + 1 WHERE sku = $1`, skuPen)
		}, `stuck: reservation res-o3 of order o3 still PENDING`},
		{"a saga still compensating", func(w *world) {
			w.exec(w.d.Order, `UPDATE saga_instances SET status = 'COMPENSATING', due_at = CURRENT_TIMESTAMP WHERE id = 'o3'`)
		}, `stuck: saga o3 still COMPENSATING`},
		{"an unsent outbox message", func(w *world) {
			w.exec(w.d.Payment, `INSERT INTO outbox (id, topic, key, headers, payload, created_at) VALUES ('m1', 'checkout.replies', 'o2', '{}', '\x00', CURRENT_TIMESTAMP)`)
		}, `stuck: payment's outbox holds 1 unsent messages`},
		{"an order left PENDING", func(w *world) {
			w.order("o5", "k5", "PENDING", "", skuPen, 1, 890)
		}, `I1: order o5: PENDING after the quiet period`},
		{"an answered order the database lacks", func(w *world) {
			w.truth.Requests["k-lost"] = Checkout{key: "k-lost", sku: skuPen, quantity: 1, customerID: customerAlice}
			w.truth.Answered["o-lost"] = "k-lost"
		}, `I1: order o-lost: answered by the gateway for k-lost but not in the order database`},
		{"an extra order", func(w *world) {
			w.order("o5", "k5", "CANCELLED", "charge-payment: card_declined", skuPen, 1, 890)
			delete(w.truth.Requests, "k5")
			delete(w.truth.Answered, "o5")
		}, `orders: order o5 (CANCELLED, key "k5"): no checkout of the harness has its key`},
		{"two orders for one checkout", func(w *world) {
			w.exec(w.d.Order, `INSERT INTO orders (id, customer_id, status, total_minor, currency, cancel_reason, idempotency_key, request_hash, created_at, updated_at)
				VALUES ('o1-twin', 'cus_bob', 'CANCELLED', 2580, 'EUR', 'x', 'k1', 'hash', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
		}, `orders: checkout k1: 2 orders`},
		{"an order for another customer", func(w *world) {
			w.exec(w.d.Order, `UPDATE orders SET customer_id = 'cus_bob' WHERE id = 'o3'`)
		}, `orders: order o3: customer cus_bob, but cus_alice asked for it`},
		{"a sale no commit applied", func(w *world) {
			w.exec(w.d.Inventory, `DELETE FROM saga_barrier WHERE saga_id = 'o1' AND step = $1`, checkoutv1.StepCommitReservation)
		}, `I4: order o1: reservation res-o1 COMMITTED, but no commit-reservation action passed inventory's barrier`},
		{"a refund no compensation applied", func(w *world) {
			w.exec(w.d.Payment, `DELETE FROM saga_barrier WHERE saga_id = 'o2' AND op = 'compensate'`)
		}, `I4: order o2: a refund, but no charge-payment compensate passed payment's barrier`},
		{"a reservation its compensation pre-empted", func(w *world) {
			w.exec(w.d.Inventory, `DELETE FROM saga_barrier WHERE saga_id = 'o4'`)
			w.barrier("inventory", "o4", checkoutv1.StepReserveStock, "compensate", "compensate")
			w.barrier("inventory", "o4", checkoutv1.StepReserveStock, "action", "compensate")
			w.exec(w.d.Inventory, `INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at)
				VALUES ('res-o4', 'o4', 'RELEASED', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)`)
			w.exec(w.d.Inventory, `INSERT INTO reservation_lines (reservation_id, sku, quantity) VALUES ('res-o4', $1, 2)`, skuEnamel)
		}, `I4: order o4: reserve-stock was pre-empted by its compensation, yet reservation res-o4 exists`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, cluster)
			tt.plant(w)
			r := w.check()
			for _, v := range r.Violations {
				if strings.Contains(v, tt.want) {
					return
				}
			}
			t.Errorf("no violation contains %q; got:\n%s", tt.want, strings.Join(r.Violations, "\n"))
		})
	}
}

// TestProveStockChecks: I5 is proved on both engines with the inventory's
// migrations, and the proof fails on a stock table without its CHECKs.
func TestProveStockChecks(t *testing.T) {
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	cluster := pgtest.Start(t)
	open := func(t *testing.T, url string) *sql.DB {
		db, err := database.OpenMigrated(ctx, url, inventorymigrations.FS, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		sqlDB, err := db.DB.DB()
		if err != nil {
			t.Fatal(err)
		}
		return sqlDB
	}
	engines := map[string]func(t *testing.T) *sql.DB{
		"postgres": func(t *testing.T) *sql.DB { return open(t, pgtest.NewDatabase(t, cluster)) },
		"sqlite":   func(t *testing.T) *sql.DB { return open(t, "sqlite:"+filepath.Join(t.TempDir(), "inventory.db")) },
	}
	for engine, db := range engines {
		t.Run(engine+" enforces", func(t *testing.T) {
			db := db(t)
			violations, err := ProveStockChecks(ctx, db)
			if err != nil || len(violations) > 0 {
				t.Fatalf("ProveStockChecks = %v, %v; want no violation", violations, err)
			}
			var negative int64
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM stock WHERE available < 0 OR reserved < 0").Scan(&negative); err != nil || negative != 0 {
				t.Errorf("after the proof: %d negative rows (%v); want the transactions rolled back", negative, err)
			}
		})
	}
	t.Run("postgres without the CHECKs", func(t *testing.T) {
		db := engines["postgres"](t)
		for _, c := range []string{"stock_available_check", "stock_reserved_check"} {
			if _, err := db.ExecContext(ctx, "ALTER TABLE stock DROP CONSTRAINT "+c); err != nil {
				t.Fatal(err)
			}
		}
		violations, err := ProveStockChecks(ctx, db)
		want := []string{"I5: the database accepted stock.available = -1", "I5: the database accepted stock.reserved = -1"}
		if err != nil || fmt.Sprint(violations) != fmt.Sprint(want) {
			t.Errorf("ProveStockChecks = %q, %v; want %q", violations, err, want)
		}
	})
	t.Run("sqlite without the CHECKs", func(t *testing.T) {
		db, err := database.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "bare.db"), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		for _, stmt := range []string{
			"CREATE TABLE stock (sku TEXT PRIMARY KEY, available BIGINT NOT NULL, reserved BIGINT NOT NULL)",
			"INSERT INTO stock VALUES ('MUG', 1, 0)",
		} {
			if err := db.Exec(stmt).Error; err != nil {
				t.Fatal(err)
			}
		}
		sqlDB, err := db.DB.DB()
		if err != nil {
			t.Fatal(err)
		}
		violations, err := ProveStockChecks(ctx, sqlDB)
		if err != nil || len(violations) != 2 {
			t.Errorf("ProveStockChecks = %q, %v; want 2 violations", violations, err)
		}
	})
}
