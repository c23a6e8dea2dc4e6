package labs

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
)

// checkKillOrder is lab 4: order is killed in the middle of checkouts and
// the sagas recover. Its evidence: order's process started after the
// gateway's (the launcher starts the gateway last, so a later order is a
// restarted one — process_start_time_seconds of both); orders placed before
// that start whose final status was recorded after it (sagas in flight at
// the kill that the restarted orchestrator finished); nothing in flight
// any more; and the saga's invariants over every order of the stack
// (package invariants, as make chaos judges them).
//
// Dead-lettered commands are reported, not counted as violations (make
// chaos counts them): a participant gives up on a command after its
// retries — lab 2's failing provider dead-letters refunds — and the
// orchestrator re-sends the compensation until it is answered, so with
// nothing in flight and I1–I4 holding they left nothing undone.
//
// What it cannot prove: it does not know what the learner's client asked
// for, so it takes each order's own lines as the request — the "orders"
// rule (each order is one answered checkout) is not judged — and it does
// not know the stock before the run, so I2's conservation (stock before =
// available + reserved + sold) holds by construction; I2 still checks that
// each reservation holds what its order asked and follows its order's fate.
func checkKillOrder(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	order, err := serviceURL(ctx, s.Consul, "order")
	if err != nil {
		return v, err
	}
	started := map[string]time.Time{}
	for name, base := range map[string]string{"order": order, "gateway": s.Gateway} {
		m, err := scrape(ctx, base)
		if err != nil {
			return v, fmt.Errorf("read %s's metrics: %w", name, err)
		}
		sec, frac := math.Modf(m.sum("process_start_time_seconds"))
		started[name] = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	}
	restart := started["order"]
	if !restart.After(started["gateway"]) {
		v.miss("order has not been restarted since the stack started (its process started at %s, before the gateway, %s): while checkouts run (step 1 of labs/04-kill-order/README.md), "+
			"kill it with kill -9 $(pgrep -x order) (step 2); the launcher starts it again",
			restart.Format(time.TimeOnly), started["gateway"].Format(time.TimeOnly))
		return v, nil
	}
	v.see("order was restarted: its process started at %s, after the gateway (%s)", restart.Format(time.TimeOnly), started["gateway"].Format(time.TimeOnly))

	d, closeDBs, err := openDatabases(ctx, s)
	if err != nil {
		return v, err
	}
	defer closeDBs()
	var across int
	var example string
	rows, err := d.Order.QueryContext(ctx, `SELECT o.id, o.created_at, max(h.at) FROM orders o
		JOIN order_status_history h ON h.order_id = o.id AND h.status IN ('CONFIRMED', 'CANCELLED')
		GROUP BY o.id, o.created_at`)
	if err != nil {
		return v, fmt.Errorf("read the orders' history: %w", err)
	}
	for rows.Next() {
		var id string
		var created, final time.Time
		if err := rows.Scan(&id, &created, &final); err != nil {
			rows.Close()
			return v, fmt.Errorf("read the orders' history: %w", err)
		}
		if created.Before(restart) && !final.Before(restart) {
			across++
			example = fmt.Sprintf("%s (placed %s, final %s)", id, created.Format("15:04:05.000"), final.Format("15:04:05.000"))
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return v, fmt.Errorf("read the orders' history: %w", err)
	}
	if across == 0 {
		v.miss("no order placed before order's restart reached its final status after it: kill order while checkouts are running (steps 1 and 2), not after they ended")
	} else {
		v.see("%d order(s) placed before the restart reached their final status after it: sagas in flight at the kill, finished by the restarted orchestrator; e.g. %s", across, example)
	}

	kc := &kafka.Client{Addr: kafka.TCP(s.Broker), Timeout: requestTimeout}
	busy, err := invariants.InFlight(ctx, d, kc)
	if err != nil {
		return v, fmt.Errorf("read what is in flight: %w", err)
	}
	if len(busy) > 0 {
		v.miss("the shop is not quiet yet (%s): stop the load and wait a few seconds — a checkout with the hanging card waits for its charge deadline — then check again",
			strings.Join(busy, ", "))
		return v, nil
	}
	v.see("nothing in flight: every order final, every outbox sent, no consumer lagging")

	truth, orders, err := truthFromDatabases(ctx, d)
	if err != nil {
		return v, err
	}
	r, err := invariants.Verify(ctx, invariants.Sources{Databases: d, PSP: s.PSP, Kafka: kc}, truth)
	if err != nil {
		return v, fmt.Errorf("check the invariants: %w", err)
	}
	var violations, deadLetters []string
	for _, violation := range r.Violations {
		switch {
		case strings.HasPrefix(violation, "orders: "):
			// Judged against a truth read from the orders themselves.
		case strings.HasPrefix(violation, "stuck: ") && strings.HasSuffix(violation, "dead-lettered messages"):
			// A command a participant gave up on (lab 2's failing
			// provider dead-letters refunds): the orchestrator re-sends
			// a compensation until it is answered, so with nothing in
			// flight and I1–I4 holding, it left nothing undone.
			deadLetters = append(deadLetters, strings.TrimPrefix(violation, "stuck: "))
		default:
			violations = append(violations, violation)
		}
	}
	if len(deadLetters) > 0 {
		v.see("note: %s — commands a participant gave up on after its retries (a failing payment provider, lab 2); "+
			"the saga re-sent them until answered, as the invariants below confirm", strings.Join(deadLetters, "; "))
	}
	if len(violations) > 0 {
		for i, violation := range violations {
			if i == 10 {
				v.miss("… and %d more violations", len(violations)-i)
				break
			}
			v.miss("invariant violated: %s", violation)
		}
		return v, nil
	}
	v.see("I1–I5 hold over all %d orders (%d CONFIRMED, %d CANCELLED): each final, the money at the payment provider as each order's fate says, no effect applied twice, no negative stock",
		orders, r.Statuses["CONFIRMED"], r.Statuses["CANCELLED"])
	return v, nil
}

// truthFromDatabases builds the ground truth the checker compares with
// from the stack's own records, for want of the learner's client: each
// single-line order is a checkout asked and answered as its row says, the
// catalog's prices are today's, and the stock before the run is what the
// stock and the CONFIRMED orders add up to. It returns it with the number
// of orders.
func truthFromDatabases(ctx context.Context, d invariants.Databases) (invariants.GroundTruth, int, error) {
	type line struct {
		key, customer, status, sku string
		quantity                   int64
		lines                      int
	}
	orders := map[string]*line{}
	rows, err := d.Order.QueryContext(ctx, `SELECT o.id, o.idempotency_key, o.customer_id, o.status, l.sku, l.quantity
		FROM orders o JOIN order_lines l ON l.order_id = o.id`)
	if err != nil {
		return invariants.GroundTruth{}, 0, fmt.Errorf("read the orders: %w", err)
	}
	for rows.Next() {
		var id string
		var l line
		if err := rows.Scan(&id, &l.key, &l.customer, &l.status, &l.sku, &l.quantity); err != nil {
			rows.Close()
			return invariants.GroundTruth{}, 0, fmt.Errorf("read the orders: %w", err)
		}
		if o, ok := orders[id]; ok {
			o.lines++
			continue
		}
		l.lines = 1
		orders[id] = &l
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return invariants.GroundTruth{}, 0, fmt.Errorf("read the orders: %w", err)
	}

	catalog := map[string]invariants.Product{}
	rows, err = d.Inventory.QueryContext(ctx, `SELECT p.sku, p.price_minor, p.currency, s.available, s.reserved
		FROM products p JOIN stock s ON s.sku = p.sku`)
	if err != nil {
		return invariants.GroundTruth{}, 0, fmt.Errorf("read the catalog: %w", err)
	}
	for rows.Next() {
		var p invariants.Product
		var reserved int64
		if err := rows.Scan(&p.SKU, &p.Price.Amount, &p.Price.Currency, &p.Available, &reserved); err != nil {
			rows.Close()
			return invariants.GroundTruth{}, 0, fmt.Errorf("read the catalog: %w", err)
		}
		p.Available += reserved
		catalog[p.SKU] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return invariants.GroundTruth{}, 0, fmt.Errorf("read the catalog: %w", err)
	}
	for _, o := range orders {
		if o.lines == 1 && o.status == "CONFIRMED" {
			p := catalog[o.sku]
			p.Available += o.quantity
			catalog[o.sku] = p
		}
	}
	truth := invariants.NewGroundTruth(catalog)
	for id, o := range orders {
		if o.lines == 1 { // the ground truth's checkouts have one line
			truth.Ask(o.key, "", o.sku, o.quantity, o.customer)
			truth.Answer(id, o.key)
		}
	}
	return truth, len(orders), nil
}
