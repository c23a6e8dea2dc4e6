package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// pspCharge and pspRefund are the PSP simulator's records, as its admin
// listings (GET /v1/admin/charges, /v1/admin/refunds) answer them.
type pspCharge struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	Amount         int64  `json:"amount"`
	IdempotencyKey string `json:"idempotency_key"`
}

type pspRefund struct {
	ID             string `json:"id"`
	ChargeID       string `json:"charge_id"`
	Amount         int64  `json:"amount"`
	IdempotencyKey string `json:"idempotency_key"`
}

// pspRecords is everything the PSP recorded.
type pspRecords struct {
	charges []pspCharge
	refunds []pspRefund
}

// readPSP reads the PSP simulator's admin listings.
func readPSP(ctx context.Context, base string) (pspRecords, error) {
	var r pspRecords
	get := func(path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var charges struct{ Items []pspCharge }
	var refunds struct{ Items []pspRefund }
	if err := get("/v1/admin/charges", &charges); err != nil {
		return r, err
	}
	if err := get("/v1/admin/refunds", &refunds); err != nil {
		return r, err
	}
	r.charges, r.refunds = charges.Items, refunds.Items
	return r, nil
}

// stockRow is one product's stock.
type stockRow struct {
	available, reserved int64
}

// readStock reads the stock table of the inventory database.
func readStock(ctx context.Context, db *pgx.Conn) (map[string]stockRow, error) {
	stock := map[string]stockRow{}
	err := query(ctx, db, "SELECT sku, available, reserved FROM stock", func(rows pgx.Rows) error {
		var sku string
		var s stockRow
		if err := rows.Scan(&sku, &s.available, &s.reserved); err != nil {
			return err
		}
		stock[sku] = s
		return nil
	})
	return stock, err
}

// query runs sql and calls scan for each row.
func query(ctx context.Context, db *pgx.Conn, sql string, scan func(pgx.Rows) error, args ...any) error {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// databases are the connections to the three services' databases.
type databases struct {
	order, inventory, payment *pgx.Conn
}

// pending counts what is not settled yet: PENDING orders, reservations and
// payments. The system is quiet when all are 0.
func (d databases) pending(ctx context.Context) (orders, reservations, payments int64, err error) {
	for _, q := range []struct {
		db  *pgx.Conn
		sql string
		n   *int64
	}{
		{d.order, "SELECT count(*) FROM orders WHERE status = 'PENDING'", &orders},
		{d.inventory, "SELECT count(*) FROM reservations WHERE status = 'PENDING'", &reservations},
		{d.payment, "SELECT count(*) FROM payments WHERE status = 'PENDING'", &payments},
	} {
		if err = q.db.QueryRow(ctx, q.sql).Scan(q.n); err != nil {
			return 0, 0, 0, err
		}
	}
	return orders, reservations, payments, nil
}

// checkResult is the checker's verdict.
type checkResult struct {
	orders      int
	statuses    map[string]int // order status → count
	cancelled   map[string]int // reason class → count
	tables      map[string]int // table → rows read
	unreadable  []string       // what could not be read
	violations  []string
	unknownIDs  int // orders the gateway answered that the database lacks
	extraOrders int // orders in the database the gateway never answered
}

func (r *checkResult) violate(inv, format string, args ...any) {
	r.violations = append(r.violations, inv+": "+fmt.Sprintf(format, args...))
}

// reasonClass groups cancellation reasons by step and cause, without the
// details: "reserve-stock: insufficient stock of MUG: 1 requested, 0
// available" → "reserve-stock: insufficient stock".
func reasonClass(reason string) string {
	step, cause, _ := strings.Cut(reason, ":")
	cause, _, _ = strings.Cut(cause, ":")
	cause, _, _ = strings.Cut(cause, " of ")
	if class := strings.TrimSpace(step + ": " + strings.TrimSpace(cause)); class != ":" {
		return class
	}
	return "(no reason)"
}

// tablesNeeded are the tables the checker must read rows from.
var tablesNeeded = []string{"orders", "stock", "reservations", "reservation_lines",
	"inventory.saga_barrier", "payments", "payment.saga_barrier", "psp.charges"}

// check reads the databases and the PSP's records and checks I1–I5. initial
// is every product's stock before the run; ids the orders the gateway
// answered.
func check(ctx context.Context, d databases, psp pspRecords, initial map[string]int64, ids map[string]checkout) *checkResult {
	r := &checkResult{statuses: map[string]int{}, cancelled: map[string]int{}, tables: map[string]int{}}
	unreadable := func(what string, err error) { r.unreadable = append(r.unreadable, fmt.Sprintf("%s: %v", what, err)) }

	// Orders.
	type orderRow struct {
		status, reason string
		total          int64
	}
	orders := map[string]orderRow{}
	err := query(ctx, d.order, "SELECT id, status, total_minor, cancel_reason FROM orders", func(rows pgx.Rows) error {
		var id string
		var o orderRow
		if err := rows.Scan(&id, &o.status, &o.total, &o.reason); err != nil {
			return err
		}
		orders[id] = o
		return nil
	})
	if err != nil {
		unreadable("orders", err)
	}
	r.tables["orders"] = len(orders)
	r.orders = len(orders)

	// Stock and reservations.
	stock, err := readStock(ctx, d.inventory)
	if err != nil {
		unreadable("stock", err)
	}
	r.tables["stock"] = len(stock)
	type reservation struct {
		status string
		lines  map[string]int64
	}
	reservations := map[string]*reservation{} // by order id
	byID := map[string]*reservation{}
	reservationStatus := func(res *reservation) string {
		if res == nil {
			return "missing"
		}
		return res.status
	}
	err = query(ctx, d.inventory, "SELECT id, order_id, status FROM reservations", func(rows pgx.Rows) error {
		var id, orderID, status string
		if err := rows.Scan(&id, &orderID, &status); err != nil {
			return err
		}
		res := &reservation{status: status, lines: map[string]int64{}}
		reservations[orderID], byID[id] = res, res
		return nil
	})
	if err != nil {
		unreadable("reservations", err)
	}
	r.tables["reservations"] = len(reservations)
	pendingBySKU, soldBySKU := map[string]int64{}, map[string]int64{}
	lines := 0
	err = query(ctx, d.inventory, "SELECT reservation_id, sku, quantity FROM reservation_lines", func(rows pgx.Rows) error {
		var id, sku string
		var q int64
		if err := rows.Scan(&id, &sku, &q); err != nil {
			return err
		}
		lines++
		res := byID[id]
		if res == nil {
			return fmt.Errorf("line of unknown reservation %s", id)
		}
		res.lines[sku] += q
		switch res.status {
		case "PENDING":
			pendingBySKU[sku] += q
		case "COMMITTED":
			soldBySKU[sku] += q
		}
		return nil
	})
	if err != nil {
		unreadable("reservation_lines", err)
	}
	r.tables["reservation_lines"] = lines

	// Barriers: I4, one row per (saga, step, op), and rows at all.
	for _, b := range []struct {
		name string
		db   *pgx.Conn
	}{{"inventory", d.inventory}, {"payment", d.payment}} {
		var rows, groups int
		err := b.db.QueryRow(ctx, `SELECT count(*), count(DISTINCT (saga_id, step, op)) FROM saga_barrier`).Scan(&rows, &groups)
		if err != nil {
			unreadable(b.name+".saga_barrier", err)
			continue
		}
		r.tables[b.name+".saga_barrier"] = rows
		if rows != groups {
			r.violate("I4", "%s.saga_barrier has %d rows for %d (saga, step, op)", b.name, rows, groups)
		}
	}

	// Payments and refunds in the payment database.
	type paymentRow struct {
		status           string
		amount, refunded int64
	}
	payments := map[string]paymentRow{} // by idempotency key
	paymentsPerOrder := map[string]int{}
	err = query(ctx, d.payment, `SELECT p.order_id, p.idempotency_key, p.status, p.amount_minor,
		COALESCE((SELECT sum(f.amount_minor) FROM refunds f WHERE f.payment_id = p.id AND f.status = 'SUCCEEDED'), 0)
		FROM payments p`, func(rows pgx.Rows) error {
		var orderID, key string
		var p paymentRow
		if err := rows.Scan(&orderID, &key, &p.status, &p.amount, &p.refunded); err != nil {
			return err
		}
		payments[key] = p
		paymentsPerOrder[orderID]++
		return nil
	})
	if err != nil {
		unreadable("payments", err)
	}
	r.tables["payments"] = len(payments)

	// The PSP's records: I4, one charge per idempotency key.
	r.tables["psp.charges"] = len(psp.charges)
	r.tables["psp.refunds"] = len(psp.refunds)
	charges := map[string]pspCharge{} // by key
	keyOfCharge := map[string]string{}
	for _, ch := range psp.charges {
		if _, dup := charges[ch.IdempotencyKey]; dup {
			r.violate("I4", "order %s: more than one PSP charge with key %s", orderOfKey(ch.IdempotencyKey), ch.IdempotencyKey)
		}
		charges[ch.IdempotencyKey] = ch
		keyOfCharge[ch.ID] = ch.IdempotencyKey
	}
	refundedByKey := map[string]int64{} // by the charge's key
	refundKeys := map[string]bool{}
	for _, rf := range psp.refunds {
		if refundKeys[rf.IdempotencyKey] {
			r.violate("I4", "order %s: more than one PSP refund with key %s", orderOfKey(rf.IdempotencyKey), rf.IdempotencyKey)
		}
		refundKeys[rf.IdempotencyKey] = true
		refundedByKey[keyOfCharge[rf.ChargeID]] += rf.Amount
	}
	for id, n := range paymentsPerOrder {
		if n > 1 {
			r.violate("I4", "order %s: %d payments", id, n)
		}
	}

	for _, need := range tablesNeeded {
		if n, ok := r.tables[need]; ok && n == 0 {
			r.unreadable = append(r.unreadable, need+": no rows")
		}
	}

	// I1, I2 (per order), I3.
	for id := range ids {
		if _, ok := orders[id]; !ok {
			r.unknownIDs++
			r.violate("I1", "order %s: answered by the gateway but not in the order database", id)
		}
	}
	for id, o := range orders {
		r.statuses[o.status]++
		if _, ok := ids[id]; !ok {
			r.extraOrders++
		}
		res := reservations[id]
		switch o.status {
		case "CONFIRMED":
			if res == nil || res.status != "COMMITTED" {
				r.violate("I2", "order %s: CONFIRMED but its reservation is %s", id, reservationStatus(res))
			}
		case "CANCELLED":
			r.cancelled[reasonClass(o.reason)]++
			if res != nil && (res.status == "PENDING" || res.status == "COMMITTED") {
				r.violate("I2", "order %s: CANCELLED but its reservation is %s", id, res.status)
			}
		default:
			r.violate("I1", "order %s: %s after the quiet period", id, o.status)
			continue
		}
		key := id + ":charge"
		captured := int64(0)
		if ch, ok := charges[key]; ok && ch.Status == "succeeded" {
			captured = ch.Amount
		}
		net := captured - refundedByKey[key]
		want := int64(0)
		if o.status == "CONFIRMED" {
			want = o.total
		}
		if net != want {
			r.violate("I3", "order %s: %s with total %d, but the PSP holds %d (captured %d, refunded %d)",
				id, o.status, o.total, net, captured, refundedByKey[key])
		}
		if p, ok := payments[key]; ok {
			dbNet := int64(0)
			if p.status == "CAPTURED" {
				dbNet = p.amount - p.refunded
			}
			if dbNet != net {
				r.violate("I3", "order %s: the payment database holds %d (%s, refunded %d), the PSP %d", id, dbNet, p.status, p.refunded, net)
			}
		} else if net != 0 || captured != 0 {
			r.violate("I3", "order %s: the PSP captured %d but the payment database has no payment", id, captured)
		}
	}

	// I2 per product, and I5.
	skus := make([]string, 0, len(initial))
	for sku := range initial {
		skus = append(skus, sku)
	}
	slices.Sort(skus)
	for _, sku := range skus {
		s, ok := stock[sku]
		if !ok {
			r.violate("I2", "product %s: gone from the stock table", sku)
			continue
		}
		if got := s.available + pendingBySKU[sku] + soldBySKU[sku]; got != initial[sku] {
			r.violate("I2", "product %s: initial %d != available %d + reserved %d + sold %d", sku, initial[sku], s.available, pendingBySKU[sku], soldBySKU[sku])
		}
		if s.reserved != pendingBySKU[sku] {
			r.violate("I2", "product %s: stock.reserved %d != %d in PENDING reservations", sku, s.reserved, pendingBySKU[sku])
		}
		if s.available < 0 || s.reserved < 0 {
			r.violate("I5", "product %s: available %d, reserved %d", sku, s.available, s.reserved)
		}
	}
	return r
}

// orderOfKey is the order id of a PSP idempotency key "<order id>:charge".
func orderOfKey(key string) string {
	id, _, _ := strings.Cut(key, ":")
	return id
}
