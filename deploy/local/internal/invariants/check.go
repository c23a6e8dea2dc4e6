package invariants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/psp/simulator"
)

// GroundTruth is what the harness knows without asking the services: the
// catalog before the run and every checkout it asked for. The checker
// expects what these imply, never what a service wrote down.
type GroundTruth struct {
	// Catalog is every product's price and available stock before the run.
	Catalog map[string]Product
	// Requests are the checkouts asked for, by Idempotency-Key.
	Requests map[string]Checkout
	// Answered maps each order id the gateway answered to the
	// Idempotency-Key of the request it answered.
	Answered map[string]string
}

// NewGroundTruth starts the ground truth of a run from the catalog before
// it.
func NewGroundTruth(catalog map[string]Product) GroundTruth {
	return GroundTruth{Catalog: catalog, Requests: map[string]Checkout{}, Answered: map[string]string{}}
}

// Ask records a checkout before it is asked for: quantity units of sku
// paid with card, by the customer whose id is customerID, under the
// Idempotency-Key key. Ask, Answer and Record are not safe for concurrent
// use.
func (t GroundTruth) Ask(key, card, sku string, quantity int64, customerID string) {
	t.Requests[key] = Checkout{key: key, card: card, sku: sku, quantity: quantity, customerID: customerID}
}

// Answer records that the gateway answered the checkout under key with the
// order id.
func (t GroundTruth) Answer(id, key string) { t.Answered[id] = key }

// Record adds what Drive asked for and was answered.
func (t GroundTruth) Record(res *DriveResult) {
	maps.Copy(t.Requests, res.Requests)
	maps.Copy(t.Answered, res.IDs)
}

// Product is a product of the catalog as the public API shows it.
type Product struct {
	SKU   string `json:"sku"`
	Price struct {
		Amount   int64  `json:"amount"`
		Currency string `json:"currency"`
	} `json:"price"`
	Available int64 `json:"available"`
}

// total is what a checkout costs at the catalog's prices, and in which
// currency.
func (t GroundTruth) total(c Checkout) (int64, string) {
	p := t.Catalog[c.sku]
	return p.Price.Amount * c.quantity, p.Price.Currency
}

// Invariants and the other rules the checker enforces, as the prefixes of
// its violations.
const (
	ruleI1     = "I1"     // every order settled
	ruleI2     = "I2"     // stock conserved, reservations as requested
	ruleI3     = "I3"     // captured − refunded as the order's fate says
	ruleI4     = "I4"     // no business effect twice
	ruleI5     = "I5"     // the database refuses negative stock
	ruleOrders = "orders" // orders are exactly the checkouts asked for
	ruleOrphan = "orphan" // rows and PSP records belong to an order
	ruleStuck  = "stuck"  // nothing left in flight after the quiet period
)

// Result is the checker's verdict and the counts the summary shows.
type Result struct {
	Statuses   map[string]int // order status → orders
	Cancelled  map[string]int // cancellation reason class → orders
	Tables     map[string]int // table or record kind → rows read
	Violations []string
	// Faults the records prove happened.
	// AmbiguousCharges are the hanging-card checkouts the PSP charged: the
	// PSP records the charge and holds its answer for PSP_HANG, longer than
	// PAYMENT_PSP_TIMEOUT, so payment's call timed out on every one of them
	// and the saga had to settle a charge it could not see.
	AmbiguousCharges  int
	InsufficientStock int // orders cancelled for insufficient stock
	PSPRefunds        int
}

func (r *Result) violate(rule, format string, args ...any) {
	r.Violations = append(r.Violations, rule+": "+fmt.Sprintf(format, args...))
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

// classInsufficientStock is the reason class of an order inventory refused
// for want of stock.
const classInsufficientStock = checkoutv1.StepReserveStock + ": insufficient stock"

// TablesNeeded are what the checker must read rows of in a run: an empty
// one means it read the wrong place, not that all is well.
var TablesNeeded = []string{"orders", "order_lines", "saga_instances", "stock", "reservations", "reservation_lines",
	"payments", "refunds", "inventory.saga_barrier", "payment.saga_barrier", "psp charges", "psp refunds"}

// orderBook indexes a snapshot by order id.
type orderBook struct {
	orders       map[string]orderRow
	lines        map[string]map[string]int64 // order → SKU → quantity
	unitPrices   map[string]map[string]int64 // order → SKU → unit price
	reservation  map[string]reservationRow   // by order
	reserved     map[string]map[string]int64 // order → SKU → quantity reserved
	payments     map[string][]paymentRow     // by order
	refunds      map[string][]refundRow      // by order
	charges      map[string][]simulator.Charge
	pspRefunds   map[string][]simulator.Refund
	preempted    map[barrierKey]bool // actions a null compensation pre-empted
	applied      map[barrierOp]bool  // operations that passed their barrier themselves
	barrierSagas map[string]bool
}

type barrierKey struct{ service, sagaID, step string }

type barrierOp struct{ service, sagaID, step, op string }

// Check judges a snapshot against the ground truth: I1–I4 and the
// bookkeeping around them (I5 is proved on the database by
// ProveStockChecks). It reads nothing but its arguments.
func Check(truth GroundTruth, s *Snapshot) *Result {
	r := &Result{Statuses: map[string]int{}, Cancelled: map[string]int{}, Tables: map[string]int{
		"orders": len(s.orders), "order_lines": len(s.orderLines), "saga_instances": len(s.sagas),
		"stock": len(s.stock), "reservations": len(s.reservations), "reservation_lines": len(s.reservationLines),
		"payments": len(s.payments), "refunds": len(s.refunds),
		"psp charges": len(s.charges), "psp refunds": len(s.pspRefunds),
	}}
	for _, b := range s.barriers {
		r.Tables[b.service+".saga_barrier"]++
	}
	r.PSPRefunds = len(s.pspRefunds)
	b := index(r, s)
	checkOrders(r, truth, b)
	checkPSP(r, b)
	checkStuck(r, s)
	for _, id := range slices.Sorted(maps.Keys(b.orders)) {
		checkOrder(r, truth, b, b.orders[id])
	}
	checkStock(r, truth, s, b)
	return r
}

// index builds the order book, reporting rows that belong to no order.
func index(r *Result, s *Snapshot) *orderBook {
	b := &orderBook{orders: map[string]orderRow{}, lines: map[string]map[string]int64{}, unitPrices: map[string]map[string]int64{},
		reservation: map[string]reservationRow{}, reserved: map[string]map[string]int64{},
		payments: map[string][]paymentRow{}, refunds: map[string][]refundRow{},
		charges: map[string][]simulator.Charge{}, pspRefunds: map[string][]simulator.Refund{},
		preempted: map[barrierKey]bool{}, applied: map[barrierOp]bool{}, barrierSagas: map[string]bool{}}
	add := func(m map[string]map[string]int64, id, sku string, q int64) {
		if m[id] == nil {
			m[id] = map[string]int64{}
		}
		m[id][sku] += q
	}
	for _, o := range s.orders {
		b.orders[o.id] = o
	}
	for _, l := range s.orderLines {
		add(b.lines, l.orderID, l.sku, l.quantity)
		add(b.unitPrices, l.orderID, l.sku, l.unitPrice)
	}
	reservationOrder := map[string]string{}
	for _, res := range s.reservations {
		if _, ok := b.orders[res.orderID]; !ok {
			r.violate(ruleOrphan, "reservation %s (%s) of order %s, which the order database lacks", res.id, res.status, res.orderID)
		}
		b.reservation[res.orderID] = res // one per order: reservations.order_id is UNIQUE
		reservationOrder[res.id] = res.orderID
	}
	for _, l := range s.reservationLines {
		add(b.reserved, reservationOrder[l.reservationID], l.sku, l.quantity)
	}
	paymentOrder := map[string]string{}
	for _, p := range s.payments {
		if _, ok := b.orders[p.orderID]; !ok {
			r.violate(ruleOrphan, "payment %s (%s, %d) of order %s, which the order database lacks", p.id, p.status, p.amount, p.orderID)
		}
		b.payments[p.orderID] = append(b.payments[p.orderID], p)
		paymentOrder[p.id] = p.orderID
	}
	for _, f := range s.refunds {
		id, ok := paymentOrder[f.paymentID]
		if !ok {
			r.violate(ruleOrphan, "refund %s (%s, %d) of payment %s, which the payment database lacks", f.id, f.status, f.amount, f.paymentID)
			continue
		}
		b.refunds[id] = append(b.refunds[id], f)
	}
	for _, br := range s.barriers {
		b.barrierSagas[br.sagaID] = true
		if _, ok := b.orders[br.sagaID]; !ok {
			r.violate(ruleOrphan, "%s barrier row (%s, %s, %s) of a saga the order database lacks", br.service, br.sagaID, br.step, br.op)
		}
		if br.op == "action" && br.insertedBy == "compensate" {
			b.preempted[barrierKey{br.service, br.sagaID, br.step}] = true
		}
		if br.op == br.insertedBy {
			b.applied[barrierOp{br.service, br.sagaID, br.step, br.op}] = true
		}
	}

	// The PSP's records, by order whatever their key: a charge by its key,
	// or else by the payment that references it; a refund by its charge.
	paymentByReference := map[string]paymentRow{}
	for _, p := range s.payments {
		if p.pspReference != "" {
			paymentByReference[p.pspReference] = p
		}
	}
	chargeOrder := map[string]string{}
	for _, ch := range s.charges {
		id, kind := checkoutv1.ParseKey(ch.IdempotencyKey)
		if kind != checkoutv1.KeyCharge {
			// Not a charge key: the order is the one whose payment
			// references the charge, or whose id starts the key.
			prefix, _, _ := strings.Cut(ch.IdempotencyKey, ":")
			if p, ok := paymentByReference[ch.ID]; ok {
				id = p.orderID
			} else if _, ok := b.orders[prefix]; ok {
				id = prefix
			} else {
				r.violate(ruleOrphan, "PSP charge %s (%s, %d) under key %q, which is no order's charge key and no payment references",
					ch.ID, ch.Status, ch.Amount, ch.IdempotencyKey)
				continue
			}
			r.violate(ruleI4, "order %s: PSP charge %s (%s, %d) under key %q, not the order's charge key %q",
				id, ch.ID, ch.Status, ch.Amount, ch.IdempotencyKey, checkoutv1.ChargeKey(id))
		}
		if _, ok := b.orders[id]; !ok {
			r.violate(ruleOrphan, "PSP charge %s (%s, %d) under key %q of order %s, which the order database lacks",
				ch.ID, ch.Status, ch.Amount, ch.IdempotencyKey, id)
		}
		b.charges[id] = append(b.charges[id], ch)
		chargeOrder[ch.ID] = id
	}
	for _, rf := range s.pspRefunds {
		id, ok := chargeOrder[rf.ChargeID]
		if !ok {
			r.violate(ruleOrphan, "PSP refund %s (%d) under key %q of charge %s, which the PSP's charges lack or no order owns",
				rf.ID, rf.Amount, rf.IdempotencyKey, rf.ChargeID)
			continue
		}
		if rf.IdempotencyKey != checkoutv1.RefundKey(id) {
			r.violate(ruleI4, "order %s: PSP refund %s (%d) under key %q, not the order's refund key %q",
				id, rf.ID, rf.Amount, rf.IdempotencyKey, checkoutv1.RefundKey(id))
		}
		b.pspRefunds[id] = append(b.pspRefunds[id], rf)
	}
	return b
}

// checkOrders checks that the orders are exactly the checkouts answered:
// each answered id is an order, each order was answered for its request's
// key, by the customer who asked.
func checkOrders(r *Result, truth GroundTruth, b *orderBook) {
	for _, id := range slices.Sorted(maps.Keys(truth.Answered)) {
		if _, ok := b.orders[id]; !ok {
			r.violate(ruleI1, "order %s: answered by the gateway for %s but not in the order database", id, truth.Answered[id])
		}
	}
	byKey := map[string][]string{}
	for _, id := range slices.Sorted(maps.Keys(b.orders)) {
		o := b.orders[id]
		byKey[o.key] = append(byKey[o.key], id)
		req, asked := truth.Requests[o.key]
		switch {
		case !asked:
			r.violate(ruleOrders, "order %s (%s, key %q): no checkout of the harness has its key", id, o.status, o.key)
		case truth.Answered[id] != o.key:
			r.violate(ruleOrders, "order %s (%s, key %q): the gateway never answered it for that key", id, o.status, o.key)
		case o.customer != req.customerID:
			r.violate(ruleOrders, "order %s: customer %s, but %s asked for it", id, o.customer, req.customerID)
		}
	}
	for key, ids := range byKey {
		if len(ids) > 1 {
			r.violate(ruleOrders, "checkout %s: %d orders %v", key, len(ids), ids)
		}
	}
}

// checkPSP counts the PSP's records per order (I4).
func checkPSP(r *Result, b *orderBook) {
	for _, id := range slices.Sorted(maps.Keys(b.charges)) {
		if chs := b.charges[id]; len(chs) > 1 {
			succeeded := 0
			for _, ch := range chs {
				if ch.Status == simulator.StatusSucceeded {
					succeeded++
				}
			}
			r.violate(ruleI4, "order %s: %d PSP charges (%d succeeded), one charge at most", id, len(chs), succeeded)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.pspRefunds)) {
		if n := len(b.pspRefunds[id]); n > 1 {
			r.violate(ruleI4, "order %s: %d PSP refunds, one at most", id, n)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.payments)) {
		if n := len(b.payments[id]); n > 1 {
			r.violate(ruleI4, "order %s: %d payments, one at most", id, n)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(b.refunds)) {
		if n := len(b.refunds[id]); n > 1 {
			r.violate(ruleI4, "order %s: %d refunds, one at most", id, n)
		}
	}
}

// checkStuck reports what is still in flight after the quiet period.
func checkStuck(r *Result, s *Snapshot) {
	for _, g := range s.sagas {
		if g.status == "RUNNING" || g.status == "COMPENSATING" {
			r.violate(ruleStuck, "saga %s still %s", g.id, g.status)
		}
	}
	for _, res := range s.reservations {
		if res.status == "PENDING" {
			r.violate(ruleStuck, "reservation %s of order %s still PENDING", res.id, res.orderID)
		}
	}
	for _, p := range s.payments {
		if p.status == "PENDING" {
			r.violate(ruleStuck, "payment %s of order %s still PENDING", p.id, p.orderID)
		}
	}
	for _, f := range s.refunds {
		if f.status == "PENDING" {
			r.violate(ruleStuck, "refund %s of payment %s still PENDING", f.id, f.paymentID)
		}
	}
	for _, service := range slices.Sorted(maps.Keys(s.unsent)) {
		if n := s.unsent[service]; n > 0 {
			r.violate(ruleStuck, "%s's outbox holds %d unsent messages", service, n)
		}
	}
	for _, topic := range slices.Sorted(maps.Keys(s.deadLetters)) {
		if n := s.deadLetters[topic]; n > 0 {
			r.violate(ruleStuck, "%s holds %d dead-lettered messages", topic, n)
		}
	}
}

// checkOrder checks one order against its request: I1, its lines and
// total, its reservation (I2), its money (I3) and pre-empted actions that
// took effect (I4).
func checkOrder(r *Result, truth GroundTruth, b *orderBook, o orderRow) {
	r.Statuses[o.status]++
	req, asked := truth.Requests[o.key]
	want := map[string]int64{}
	wantTotal, currency := int64(0), ""
	if asked {
		want[req.sku] = req.quantity
		wantTotal, currency = truth.total(req)
		if card := req.card; card == cardHangs && len(b.charges[o.id]) > 0 {
			r.AmbiguousCharges++
		}
	}
	switch o.status {
	case "CONFIRMED", "CANCELLED":
	default:
		r.violate(ruleI1, "order %s: %s after the quiet period", o.id, o.status)
	}
	if o.status == "CANCELLED" {
		class := reasonClass(o.reason)
		r.Cancelled[class]++
		if class == classInsufficientStock {
			r.InsufficientStock++
		}
	}
	if asked {
		if got := b.lines[o.id]; !maps.Equal(got, want) {
			r.violate(ruleOrders, "order %s: lines %v, but the checkout asked for %v", o.id, got, want)
		}
		if o.total != wantTotal || o.currency != currency {
			r.violate(ruleOrders, "order %s: total %d %s, but the catalog prices make %d %s", o.id, o.total, o.currency, wantTotal, currency)
		}
	}

	// I2: the reservation holds what was asked for, and its state follows
	// the order's.
	res, reserved := b.reservation[o.id]
	if reserved && asked && !maps.Equal(b.reserved[o.id], want) {
		r.violate(ruleI2, "order %s: reservation %s holds %v, but the checkout asked for %v", o.id, res.id, b.reserved[o.id], want)
	}
	status := "missing"
	if reserved {
		status = res.status
	}
	switch {
	case o.status == "CONFIRMED" && status != "COMMITTED":
		r.violate(ruleI2, "order %s: CONFIRMED but its reservation is %s", o.id, status)
	case o.status == "CANCELLED" && (status == "PENDING" || status == "COMMITTED"):
		r.violate(ruleI2, "order %s: CANCELLED but its reservation is %s", o.id, status)
	}

	// I3: what the PSP holds, and what the payment database says it holds.
	var pspCaptured, pspRefunded, dbCaptured, dbRefunded int64
	for _, ch := range b.charges[o.id] {
		if ch.Status == simulator.StatusSucceeded {
			pspCaptured += ch.Amount
			if asked && ch.Currency != currency {
				r.violate(ruleI3, "order %s: PSP charge %s in %s, the catalog prices in %s", o.id, ch.ID, ch.Currency, currency)
			}
		}
	}
	for _, rf := range b.pspRefunds[o.id] {
		pspRefunded += rf.Amount
	}
	for _, p := range b.payments[o.id] {
		if p.status == "CAPTURED" {
			dbCaptured += p.amount
		}
	}
	for _, f := range b.refunds[o.id] {
		if f.status == "SUCCEEDED" {
			dbRefunded += f.amount
		}
	}
	if asked {
		wantNet := int64(0)
		if o.status == "CONFIRMED" {
			wantNet = wantTotal
		}
		if net := pspCaptured - pspRefunded; net != wantNet {
			r.violate(ruleI3, "order %s: %s at catalog total %d, but the PSP holds %d (captured %d, refunded %d)",
				o.id, o.status, wantTotal, net, pspCaptured, pspRefunded)
		}
	}
	if dbCaptured != pspCaptured {
		r.violate(ruleI3, "order %s: the payment database has %d captured, the PSP %d", o.id, dbCaptured, pspCaptured)
	}
	if dbRefunded != pspRefunded {
		r.violate(ruleI3, "order %s: the payment database has %d refunded, the PSP %d", o.id, dbRefunded, pspRefunded)
	}
	for _, p := range b.payments[o.id] {
		var succeeded int64
		for _, f := range b.refunds[o.id] {
			if f.paymentID == p.id && f.status != "FAILED" {
				succeeded += f.amount
			}
		}
		if p.refunded != succeeded {
			r.violate(ruleI3, "order %s: payment %s says %d refunded, its refunds %d", o.id, p.id, p.refunded, succeeded)
		}
		if p.key != checkoutv1.ChargeKey(o.id) {
			r.violate(ruleI4, "order %s: payment %s under key %q, not the order's charge key", o.id, p.id, p.key)
		}
	}
	for _, f := range b.refunds[o.id] {
		if f.key != checkoutv1.RefundKey(o.id) {
			r.violate(ruleI4, "order %s: refund %s under key %q, not the order's refund key", o.id, f.id, f.key)
		}
	}

	// I4: every effect is the work of one operation that passed its
	// participant's barrier (which lets each through once): a reservation of
	// reserve-stock's action, its sale of commit-reservation's, its release of
	// reserve-stock's compensation; a payment of charge-payment's action, a
	// refund of its compensation. An effect without one was applied by a path
	// that skips the barrier, where nothing stops it applying twice.
	for _, e := range []struct {
		has               bool
		what              string
		service, step, op string
	}{
		{reserved, "reservation " + res.id, "inventory", checkoutv1.StepReserveStock, "action"},
		{status == "COMMITTED", "reservation " + res.id + " COMMITTED", "inventory", checkoutv1.StepCommitReservation, "action"},
		{status == "RELEASED", "reservation " + res.id + " RELEASED", "inventory", checkoutv1.StepReserveStock, "compensate"},
		{len(b.payments[o.id]) > 0, "a payment", "payment", checkoutv1.StepChargePayment, "action"},
		{len(b.refunds[o.id]) > 0, "a refund", "payment", checkoutv1.StepChargePayment, "compensate"},
	} {
		if e.has && !b.applied[barrierOp{e.service, o.id, e.step, e.op}] {
			r.violate(ruleI4, "order %s: %s, but no %s %s passed %s's barrier", o.id, e.what, e.step, e.op, e.service)
		}
	}

	// I4: an action its compensation pre-empted (the barrier's null
	// compensation) must have no effect.
	if b.preempted[barrierKey{"inventory", o.id, checkoutv1.StepReserveStock}] && reserved {
		r.violate(ruleI4, "order %s: reserve-stock was pre-empted by its compensation, yet reservation %s exists (%s)", o.id, res.id, res.status)
	}
	if b.preempted[barrierKey{"payment", o.id, checkoutv1.StepChargePayment}] && (len(b.payments[o.id]) > 0 || len(b.charges[o.id]) > 0) {
		r.violate(ruleI4, "order %s: charge-payment was pre-empted by its compensation, yet it has %d payments and %d PSP charges",
			o.id, len(b.payments[o.id]), len(b.charges[o.id]))
	}
}

// checkStock checks I2 per product: what left available is exactly what
// the confirmed orders asked for (sold) plus what the pending ones asked
// for (reserved), by the harness's own record of the requests.
func checkStock(r *Result, truth GroundTruth, s *Snapshot, b *orderBook) {
	sold, held := map[string]int64{}, map[string]int64{}
	for id, o := range b.orders {
		key, ok := truth.Answered[id]
		if !ok || key != o.key {
			continue // an order nobody asked for: reported by checkOrders
		}
		req := truth.Requests[key]
		switch o.status {
		case "CONFIRMED":
			sold[req.sku] += req.quantity
		case "PENDING":
			held[req.sku] += req.quantity
		}
	}
	for _, sku := range slices.Sorted(maps.Keys(truth.Catalog)) {
		st, ok := s.stock[sku]
		if !ok {
			r.violate(ruleI2, "product %s: gone from the stock table", sku)
			continue
		}
		initial := truth.Catalog[sku].Available
		if st.available+st.reserved+sold[sku] != initial {
			r.violate(ruleI2, "product %s: initial %d != available %d + reserved %d + sold %d (the confirmed orders asked for %d)",
				sku, initial, st.available, st.reserved, sold[sku], sold[sku])
		}
		if st.reserved != held[sku] {
			r.violate(ruleI2, "product %s: %d reserved, the pending orders asked for %d", sku, st.reserved, held[sku])
		}
	}
	for _, sku := range slices.Sorted(maps.Keys(s.stock)) {
		if _, ok := truth.Catalog[sku]; !ok {
			r.violate(ruleI2, "product %s: in the stock table but not in the catalog before the run", sku)
		}
	}
}

// ProveStockChecks shows that the inventory database itself refuses
// negative stock (I5): inside transactions it rolls back, it drives a
// product's available and then its reserved below zero, and each UPDATE
// must fail with a CHECK violation. It returns a violation for each one the
// database let through, and an error when it could not try.
func ProveStockChecks(ctx context.Context, db *sql.DB) ([]string, error) {
	var violations []string
	for _, column := range []string{"available", "reserved"} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return violations, fmt.Errorf("prove I5: %w", err)
		}
		res, err := tx.ExecContext(ctx, "UPDATE stock SET "+column+" = -1 WHERE sku = (SELECT min(sku) FROM stock)")
		var n int64
		if err == nil {
			n, err = res.RowsAffected()
			if err == nil && n == 0 {
				err = errors.New("the stock table is empty")
			}
			if err == nil {
				violations = append(violations, fmt.Sprintf("%s: the database accepted stock.%s = -1", ruleI5, column))
			}
		}
		rollbackErr := tx.Rollback()
		switch {
		case err != nil && !isCheckViolation(err):
			return violations, fmt.Errorf("prove I5 on stock.%s: %w", column, err)
		case rollbackErr != nil:
			return violations, fmt.Errorf("prove I5: rollback: %w", rollbackErr)
		}
	}
	return violations, nil
}

// isCheckViolation reports whether err is a CHECK constraint violation, on
// PostgreSQL (SQLSTATE 23514) or SQLite.
func isCheckViolation(err error) bool {
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok {
		return pgErr.Code == "23514"
	}
	return strings.Contains(err.Error(), "CHECK constraint failed")
}
