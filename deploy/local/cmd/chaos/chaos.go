package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/microshop/microshop/deploy/local/internal/supervise"
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
	quietAfter time.Duration
	wall       time.Duration
}

// runChaos runs the stack, the load and the faults, then the checker. It
// returns a nil report only if nothing ran.
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

	var d databases
	for name, conn := range map[string]**pgx.Conn{"order": &d.order, "inventory": &d.inventory, "payment": &d.payment} {
		if *conn, err = pgx.Connect(ctx, urls[name]); err != nil {
			return nil, fmt.Errorf("connect to %s database: %w", name, err)
		}
		defer (*conn).Close(context.WithoutCancel(ctx))
	}

	r := &report{logs: counts}
	c := &client{base: s.gatewayURL, http: &http.Client{Timeout: 10 * time.Second}}
	initial, plenty, low, tokens, err := prepare(ctx, c, d, o.orders)
	if err != nil {
		return nil, err
	}
	progressf("stack ready; %d plentiful and %d low-stock products; warming up", len(plenty), len(low))
	warm, err := warmUp(ctx, c, d, tokens[0], o.seed, plenty[0], o.readyTimeout)
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
	res := drive(faultCtx, c, tokens, o.orders, o.concurrency, pace, o.seed, plenty, low, func() {
		if n := placed.Add(1); n%max(int64(o.orders)/10, 1) == 0 {
			progressf("%d orders placed, %d kills, %d restarts", n, kills.Load(), s.restarts.Load())
		}
	})
	<-killerDone
	r.kills = kills.Load()
	maps.Copy(res.ids, warm)
	r.placed, r.notPlaced, r.retries = len(res.ids), res.failed, res.retries
	progressf("%d orders placed (%d POST retries), %d kills; restarting every replica without crash injection", r.placed, r.retries, r.kills)
	if err := s.calmDown(ctx, o.readyTimeout); err != nil {
		progressf("calming down: %v", err)
	}

	// Quiet: the faults have stopped; wait for every order, reservation
	// and payment to settle.
	progressf("waiting up to %s for quiet", o.quietTimeout)
	quietStart := time.Now()
	var lastPending string
	err = poll(ctx, o.quietTimeout, func() bool {
		orders, reservations, payments, err := d.pending(ctx)
		if err != nil {
			lastPending = err.Error()
			return false
		}
		lastPending = fmt.Sprintf("%d orders, %d reservations, %d payments pending", orders, reservations, payments)
		return orders+reservations+payments == 0
	})
	r.quietAfter = time.Since(quietStart)
	if err != nil {
		progressf("not quiet after %s: %s", o.quietTimeout, lastPending)
	} else {
		progressf("quiet after %s", r.quietAfter.Round(time.Millisecond))
	}

	psp, pspErr := readPSP(ctx, s.pspURL)
	r.restarts = s.restarts.Load()
	stopStack()
	r.check = check(ctx, d, psp, initial, res.ids)
	if pspErr != nil {
		r.check.unreadable = append(r.check.unreadable, "psp: "+pspErr.Error())
	}
	return r, nil
}

// prepare logs in, restocks the plentiful products so that the run does not
// sell them out, and reads every product's stock before the run.
func prepare(ctx context.Context, c *client, d databases, orders int) (initial map[string]int64, plenty, low []string, tokens []string, err error) {
	stock, err := readStock(ctx, d.inventory)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	for sku, s := range stock {
		if s.available > lowStock {
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
		tok, err := c.login(ctx, user)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		tokens = append(tokens, tok)
	}
	if err := c.restock(ctx, admin, plenty, int64(2*orders)); err != nil {
		return nil, nil, nil, nil, err
	}
	stock, err = readStock(ctx, d.inventory)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	initial = map[string]int64{}
	for sku, s := range stock {
		if s.reserved != 0 {
			return nil, nil, nil, nil, fmt.Errorf("product %s has %d reserved before the run", sku, s.reserved)
		}
		initial[sku] = s.available
	}
	return initial, plenty, low, tokens, nil
}

// warmUp places orders with a good card, one at a time, until one is
// CONFIRMED: the consumer groups have settled and the saga works before any
// fault is injected. It returns the orders it placed.
func warmUp(ctx context.Context, c *client, d databases, token string, seed uint64, sku string, timeout time.Duration) (map[string]checkout, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	placed := map[string]checkout{}
	for i := 0; ; i++ {
		co := checkout{key: fmt.Sprintf("chaos-%d-warmup-%d", seed, i), card: cardSucceeds, sku: sku, quantity: 1}
		var o struct{ ID string }
		body := map[string]any{"card_number": co.card, "lines": []map[string]any{{"sku": co.sku, "quantity": co.quantity}}}
		if _, err := c.retry(ctx, http.MethodPost, "/api/v1/orders", token, co.key, body, &o); err != nil {
			return placed, fmt.Errorf("warm-up order: %w", err)
		}
		placed[o.ID] = co
		var status string
		err := poll(ctx, timeout, func() bool {
			return d.order.QueryRow(ctx, "SELECT status FROM orders WHERE id = $1", o.ID).Scan(&status) == nil && status != "PENDING"
		})
		if err != nil {
			return placed, fmt.Errorf("warm-up order %s still %s: %w", o.ID, status, err)
		}
		if status == "CONFIRMED" {
			return placed, nil
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

// err is the run's verdict: violations, or data the checker could not read.
func (r *report) err() error {
	var errs []error
	if n := len(r.check.violations); n > 0 {
		errs = append(errs, fmt.Errorf("%d invariant violations", n))
	}
	if n := len(r.check.unreadable); n > 0 {
		errs = append(errs, fmt.Errorf("the checker could not read what it needs: %s", strings.Join(r.check.unreadable, "; ")))
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
	for _, u := range r.check.unreadable {
		fmt.Fprintf(w, "unreadable: %s\n", u)
	}
	for i, e := range r.notPlaced {
		if i == 5 {
			fmt.Fprintf(w, "not placed: … and %d more\n", len(r.notPlaced)-5)
			break
		}
		fmt.Fprintf(w, "not placed: %v\n", e)
	}
	barrierDup, stale := r.logs.duplicates()
	row := func(name string, value any) { fmt.Fprintf(w, "  %-40s %v\n", name, value) }
	fmt.Fprintln(w, "chaos summary")
	row("orders placed (ids answered)", r.placed)
	row("orders not placed", len(r.notPlaced))
	row("orders in the database", r.check.orders)
	row("confirmed", r.check.statuses["CONFIRMED"])
	row("cancelled", r.check.statuses["CANCELLED"])
	for _, class := range slices.Sorted(maps.Keys(r.check.cancelled)) {
		row("  cancelled: "+class, r.check.cancelled[class])
	}
	row("pending", r.check.statuses["PENDING"])
	row("POST retries (same Idempotency-Key)", r.retries)
	row("kills (SIGKILL)", r.kills)
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
	row("quiet after", r.quietAfter.Round(time.Millisecond))
	row("violations", len(r.check.violations))
	row("wall time", r.wall.Round(time.Second))
}
