package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/deploy/local/internal/supervise"
	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/pgcluster"
)

// report is what a run did and found.
type report struct {
	placed     int // orders the gateway answered with an id
	notPlaced  []error
	retries    int64 // POSTs retried
	kills      int64
	restarts   int64
	logs       *logCounts
	check      *checkResult
	problems   []string // what makes the run fail besides violations: not quiet, unreadable, ...
	quietAfter time.Duration
	wall       time.Duration
}

func (r *report) problem(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// runChaos runs the stack, the load and the faults, lets the stack settle,
// stops the replicas, reads the snapshot and checks it. It returns a nil
// report only if nothing ran.
func runChaos(ctx context.Context, o options, stdout io.Writer) (*report, error) {
	var err error
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return nil, err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(o.dir); err != nil {
		return nil, err
	}
	// 0755: the postgres user runs the cluster under it.
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(o.dir, 0o755); err != nil {
		return nil, err
	}
	logPath := filepath.Join(o.dir, "chaos.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	counts := newLogCounts()
	out := supervise.NewOutput(logFile, counts.observe)
	progressf := func(format string, args ...any) {
		fmt.Fprintf(stdout, "chaos: "+format+"\n", args...)
		out.Printf("chaos", format, args...)
	}
	progressf("processes' output: %s", logPath)

	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: o.dir, Log: out.Writer("postgres")})
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop(context.WithoutCancel(ctx)) }()
	urls := map[string]string{}
	for _, name := range []string{"order", "inventory", "payment"} {
		if urls[name], err = cluster.CreateDatabase(ctx, name+"db"); err != nil {
			return nil, err
		}
	}

	s, err := newStack(o, out, urls)
	if err != nil {
		return nil, err
	}
	faultCtx, stopFaults := context.WithCancel(ctx)
	defer stopFaults()
	progressf("starting PostgreSQL, the broker, the PSP, 2× inventory, payment and order, the gateway")
	if err := s.start(faultCtx, o.readyTimeout); err != nil {
		return nil, err
	}
	stopped := false
	stopStack := func() {
		if !stopped {
			stopped = true
			stopFaults()
			s.stop()
		}
	}
	defer stopStack()

	d, closeDBs, err := openDatabases(ctx, urls)
	if err != nil {
		return nil, err
	}
	defer closeDBs()
	kc := &kafka.Client{Addr: kafka.TCP(s.brokerAddr), Timeout: 10 * time.Second}

	r := &report{logs: counts}
	c := &client{base: s.gatewayURL, http: &http.Client{Timeout: 10 * time.Second}}
	catalog, plenty, low, customers, err := prepare(ctx, c, d, o.orders)
	if err != nil {
		return nil, err
	}
	truth := groundTruth{catalog: catalog, requests: map[string]checkout{}, answered: map[string]string{}}
	progressf("stack ready; %d plentiful and %d low-stock products; warming up", len(plenty), len(low))
	err = warmUp(ctx, c, d, customers[0], o.seed, plenty[0], o.readyTimeout, truth)
	if err != nil {
		return nil, err
	}
	progressf("a checkout went through; placing orders")

	// The killer: a kill every kill-interval on average, each at a random
	// moment, while the orders are placed at a pace that makes the run last
	// as long as the kills; those left when the orders are placed follow.
	var placed, kills atomic.Int64
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		rng := rand.New(rand.NewPCG(o.seed, 1<<62))
		for kills.Load() < int64(o.kills) {
			wait := time.Duration(rng.Int64N(2 * int64(o.killInterval)))
			select {
			case <-faultCtx.Done():
				return
			case <-time.After(wait):
			}
			if s.killOne(rng) {
				kills.Add(1)
			}
		}
	}()
	var pace time.Duration
	if o.kills > 0 {
		pace = o.killInterval * time.Duration(o.kills) / time.Duration(o.orders)
	}
	res := drive(faultCtx, c, customers, o.orders, o.concurrency, pace, o.seed, plenty, low, func() {
		if n := placed.Add(1); n%max(int64(o.orders)/10, 1) == 0 {
			progressf("%d orders placed, %d kills, %d restarts", n, kills.Load(), s.restarts.Load())
		}
	})
	<-killerDone
	r.kills = kills.Load()
	maps.Copy(truth.requests, res.requests)
	maps.Copy(truth.answered, res.ids)
	r.placed, r.notPlaced, r.retries = len(truth.answered), res.failed, res.retries
	progressf("%d orders placed (%d POST retries), %d kills; restarting every replica without crash injection", r.placed, r.retries, r.kills)
	if err := s.calmDown(ctx, o.readyTimeout); err != nil {
		r.problem("calming down: %v", err)
	}

	// Settle: the faults have stopped; the stack runs on for at least the
	// longest retry backoff and until nothing is in flight.
	progressf("settling: at least %s, at most %s, until nothing is pending, every outbox is sent and no consumer group lags", settleWindow, o.quietTimeout)
	quietStart := time.Now()
	var last string
	err = poll(ctx, o.quietTimeout, func() bool {
		busy, err := inFlight(ctx, d, kc)
		switch {
		case err != nil:
			last = err.Error()
		case len(busy) > 0:
			last = strings.Join(busy, ", ")
		default:
			last = "quiet"
			return time.Since(quietStart) >= settleWindow
		}
		return false
	})
	r.quietAfter = time.Since(quietStart)
	if err != nil {
		r.problem("not quiet within -quiet-timeout %s: %s", o.quietTimeout, last)
	} else {
		progressf("quiet after %s", r.quietAfter.Round(time.Millisecond))
	}

	// The snapshot: the replicas stop first, so that nothing changes while
	// the PSP, the dead-letter topics and the databases are read.
	r.restarts = s.restarts.Load()
	stopFaults()
	s.stopReplicas()
	snap := &snapshot{}
	for what, read := range map[string]func() error{
		"psp":           func() error { return readPSP(ctx, s.pspURL, snap) },
		"dead letters":  func() error { return readDeadLetters(ctx, kc, snap) },
		"the databases": func() error { return readDatabases(ctx, d, snap) },
	} {
		if err := read(); err != nil {
			r.problem("the checker could not read %s: %v", what, err)
		}
	}
	r.check = check(truth, snap)
	for _, table := range tablesNeeded {
		if r.check.tables[table] == 0 {
			r.problem("the checker read no rows of %s", table)
		}
	}
	i5, err := proveStockChecks(ctx, d.inventory)
	if err != nil {
		r.problem("%v", err)
	}
	r.check.violations = append(r.check.violations, i5...)
	stopStack()
	violationsPath := filepath.Join(o.dir, "violations.txt")
	if err := os.WriteFile(violationsPath, []byte(strings.Join(append(r.check.violations, ""), "\n")), 0o644); err != nil {
		r.problem("write %s: %v", violationsPath, err)
	} else if len(r.check.violations) > 0 {
		progressf("every violation: %s", violationsPath)
	}
	return r, nil
}

// openDatabases opens the three services' databases.
func openDatabases(ctx context.Context, urls map[string]string) (databases, func(), error) {
	var d databases
	var opened []*database.DB
	closeAll := func() {
		for _, db := range opened {
			_ = db.Close()
		}
	}
	log := slog.New(slog.DiscardHandler)
	for name, db := range map[string]**sql.DB{"order": &d.order, "inventory": &d.inventory, "payment": &d.payment} {
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

// inFlight lists what is not settled yet: orders, reservations, payments
// and refunds PENDING, sagas running or compensating, outbox rows not sent,
// commands and replies not consumed. The stack is quiet when it is empty.
func inFlight(ctx context.Context, d databases, kc *kafka.Client) ([]string, error) {
	var busy []string
	for _, q := range []struct {
		what string
		db   *sql.DB
		sql  string
	}{
		{"orders PENDING", d.order, "SELECT count(*) FROM orders WHERE status = 'PENDING'"},
		{"sagas in flight", d.order, "SELECT count(*) FROM saga_instances WHERE status IN ('RUNNING', 'COMPENSATING')"},
		{"reservations PENDING", d.inventory, "SELECT count(*) FROM reservations WHERE status = 'PENDING'"},
		{"payments PENDING", d.payment, "SELECT count(*) FROM payments WHERE status = 'PENDING'"},
		{"refunds PENDING", d.payment, "SELECT count(*) FROM refunds WHERE status = 'PENDING'"},
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

// prepare logs in, restocks the plentiful products so that the run does not
// sell them out, and reads the catalog, prices and stock, before the run.
func prepare(ctx context.Context, c *client, d databases, orders int) (catalog map[string]product, plenty, low []string, customers []customer, err error) {
	catalog, err = c.catalog(ctx)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for sku, p := range catalog {
		if p.Available > lowStock {
			plenty = append(plenty, sku)
		} else {
			low = append(low, sku)
		}
	}
	slices.Sort(plenty)
	slices.Sort(low)
	if len(plenty) == 0 {
		return nil, nil, nil, nil, errors.New("no product with stock to sell")
	}
	admin, err := c.login(ctx, "admin")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for _, user := range []string{"alice", "bob"} {
		cu, err := c.login(ctx, user)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		customers = append(customers, cu)
	}
	if err := c.restock(ctx, admin.token, plenty, int64(2*orders)); err != nil {
		return nil, nil, nil, nil, err
	}
	if catalog, err = c.catalog(ctx); err != nil {
		return nil, nil, nil, nil, err
	}
	// The stock the catalog shows is all there is only if nothing is held.
	held, err := count(ctx, d.inventory, "SELECT count(*) FROM stock WHERE reserved <> 0")
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if held != 0 {
		return nil, nil, nil, nil, fmt.Errorf("%d products have stock reserved before the run", held)
	}
	return catalog, plenty, low, customers, nil
}

// warmUp places orders with a good card, one at a time, until one is
// CONFIRMED: the consumer groups have settled and the saga works before any
// fault is injected. It records the orders it placed in truth.
func warmUp(ctx context.Context, c *client, d databases, cu customer, seed uint64, sku string, timeout time.Duration, truth groundTruth) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for i := 0; ; i++ {
		co := checkout{key: fmt.Sprintf("chaos-%d-warmup-%d", seed, i), card: cardSucceeds, sku: sku, quantity: 1, customerID: cu.id}
		truth.requests[co.key] = co
		var o struct{ ID string }
		body := map[string]any{"card_number": co.card, "lines": []map[string]any{{"sku": co.sku, "quantity": co.quantity}}}
		if _, err := c.retry(ctx, http.MethodPost, "/api/v1/orders", cu.token, co.key, body, &o); err != nil {
			return fmt.Errorf("warm-up order: %w", err)
		}
		truth.answered[o.ID] = co.key
		var status string
		err := poll(ctx, timeout, func() bool {
			return d.order.QueryRowContext(ctx, "SELECT status FROM orders WHERE id = $1", o.ID).Scan(&status) == nil && status != "PENDING"
		})
		if err != nil {
			return fmt.Errorf("warm-up order %s still %s: %w", o.ID, status, err)
		}
		if status == "CONFIRMED" {
			return nil
		}
	}
}

// poll calls cond every 200ms until it holds or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() bool) error {
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

// faults are the faults the run must prove happened, each with how often
// it was observed: a run in which one never occurred proves nothing about it.
func (r *report) faults() []fault {
	barrierDup, _ := r.logs.duplicates()
	r.logs.mu.Lock()
	crashes := 0
	for _, n := range r.logs.crashes {
		crashes += n
	}
	r.logs.mu.Unlock()
	return []fault{
		{"kills (SIGKILL)", int(r.kills)},
		{"injected crashes after handle", crashes},
		{"redeliveries seen by a barrier", barrierDup},
		{"refunds at the PSP", r.check.pspRefunds},
		{"ambiguous (hanging-card) charges", r.check.ambiguousCharges},
		{"insufficient-stock cancellations", r.check.insufficientStock},
	}
}

type fault struct {
	name string
	seen int
}

// err is the run's verdict: violations, orders not placed, faults that
// never happened, and anything that kept the checker from a sound snapshot.
func (r *report) err() error {
	var errs []error
	if n := len(r.check.violations); n > 0 {
		errs = append(errs, fmt.Errorf("%d invariant violations", n))
	}
	if n := len(r.notPlaced); n > 0 {
		errs = append(errs, fmt.Errorf("%d orders not placed", n))
	}
	var missing []string
	for _, f := range r.faults() {
		if f.seen == 0 {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("faults that never happened: %s", strings.Join(missing, ", ")))
	}
	for _, p := range r.problems {
		errs = append(errs, errors.New(p))
	}
	return errors.Join(errs...)
}

// print writes the violations and the summary table.
func (r *report) print(w io.Writer) {
	const maxShown = 50
	for i, v := range r.check.violations {
		if i == maxShown {
			fmt.Fprintf(w, "violation: … and %d more\n", len(r.check.violations)-maxShown)
			break
		}
		fmt.Fprintf(w, "violation: %s\n", v)
	}
	for _, p := range r.problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
	for i, e := range r.notPlaced {
		if i == 5 {
			fmt.Fprintf(w, "not placed: … and %d more\n", len(r.notPlaced)-5)
			break
		}
		fmt.Fprintf(w, "not placed: %v\n", e)
	}
	barrierDup, stale := r.logs.duplicates()
	row := func(name string, value any) { fmt.Fprintf(w, "  %-44s %v\n", name, value) }
	fmt.Fprintln(w, "chaos summary")
	row("orders placed (ids answered)", r.placed)
	row("orders not placed", len(r.notPlaced))
	row("orders in the database", r.check.tables["orders"])
	row("confirmed", r.check.statuses["CONFIRMED"])
	row("cancelled", r.check.statuses["CANCELLED"])
	for _, class := range slices.Sorted(maps.Keys(r.check.cancelled)) {
		row("  cancelled: "+class, r.check.cancelled[class])
	}
	row("pending", r.check.statuses["PENDING"])
	row("POST retries (same Idempotency-Key)", r.retries)
	for _, f := range r.faults() {
		row("fault: "+f.name, f.seen)
	}
	r.logs.mu.Lock()
	for _, svc := range slices.Sorted(maps.Keys(r.logs.crashes)) {
		row("injected crashes after handle: "+svc, r.logs.crashes[svc])
	}
	row("restarts", r.restarts)
	row("duplicate deliveries observed", barrierDup+stale)
	row("  barrier duplicates (participants)", barrierDup)
	row("  stale replies (orchestrator)", stale)
	for _, svc := range slices.Sorted(maps.Keys(r.logs.barrier)) {
		for _, kind := range slices.Sorted(maps.Keys(r.logs.barrier[svc])) {
			row("barrier "+kind+": "+svc, r.logs.barrier[svc][kind])
		}
	}
	for _, res := range slices.Sorted(maps.Keys(r.logs.replies)) {
		row("orchestrator replies ignored: "+res, r.logs.replies[res])
	}
	row("error log lines", r.logs.failures)
	r.logs.mu.Unlock()
	for _, t := range slices.Sorted(maps.Keys(r.check.tables)) {
		row("rows read: "+t, r.check.tables[t])
	}
	row("quiet after (settle window "+settleWindow.String()+")", r.quietAfter.Round(time.Millisecond))
	byRule := map[string]int{}
	for _, v := range r.check.violations {
		rule, _, _ := strings.Cut(v, ":")
		byRule[rule]++
	}
	for _, rule := range slices.Sorted(maps.Keys(byRule)) {
		row("violations: "+rule, byRule[rule])
	}
	row("violations", len(r.check.violations))
	row("wall time", r.wall.Round(time.Second))
}
