package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
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
	check      *invariants.Result
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

	d, closeDBs, err := invariants.OpenDatabases(ctx, urls)
	if err != nil {
		return nil, err
	}
	defer closeDBs()
	kc := &kafka.Client{Addr: kafka.TCP(s.brokerAddr), Timeout: 10 * time.Second}

	r := &report{logs: counts}
	c := invariants.NewClient(s.gatewayURL, 10*time.Second)
	shop, err := invariants.Prepare(ctx, c, d, o.orders)
	if err != nil {
		return nil, err
	}
	truth := invariants.NewGroundTruth(shop.Catalog)
	progressf("stack ready; %d plentiful and %d low-stock products; warming up", len(shop.Plenty), len(shop.Low))
	if err := invariants.WarmUp(ctx, c, d, shop, o.seed, o.readyTimeout, truth); err != nil {
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
	res := invariants.Drive(faultCtx, c, shop, invariants.Load{Orders: o.orders, Concurrency: o.concurrency, Pace: pace, Seed: o.seed,
		Progress: func() {
			if n := placed.Add(1); n%max(int64(o.orders)/10, 1) == 0 {
				progressf("%d orders placed, %d kills, %d restarts", n, kills.Load(), s.restarts.Load())
			}
		}})
	<-killerDone
	r.kills = kills.Load()
	truth.Record(res)
	r.placed, r.notPlaced, r.retries = len(truth.Answered), res.Failed, res.Retries
	progressf("%d orders placed (%d POST retries), %d kills; restarting every replica without crash injection", r.placed, r.retries, r.kills)
	if err := s.calmDown(ctx, o.readyTimeout); err != nil {
		r.problem("calming down: %v", err)
	}

	// Settle: the faults have stopped; the stack runs on for at least the
	// longest retry backoff and until nothing is in flight.
	progressf("settling: at least %s, at most %s, until nothing is pending, every outbox is sent and no consumer group lags", settleWindow, o.quietTimeout)
	r.quietAfter, err = invariants.AwaitQuiet(ctx, d, kc, settleWindow, o.quietTimeout)
	if err != nil {
		r.problem("-quiet-timeout: %v", err)
	} else {
		progressf("quiet after %s", r.quietAfter.Round(time.Millisecond))
	}

	// The snapshot: the replicas stop first, so that nothing changes while
	// the PSP, the dead-letter topics and the databases are read.
	r.restarts = s.restarts.Load()
	stopFaults()
	s.stopReplicas()
	r.check, err = invariants.Verify(ctx, invariants.Sources{Databases: d, PSP: s.pspURL, Kafka: kc}, truth)
	if err != nil {
		r.problem("the checker: %v", err)
	}
	if r.check == nil {
		r.check = &invariants.Result{}
	}
	for _, table := range r.check.Unread() {
		r.problem("the checker read no rows of %s", table)
	}
	stopStack()
	violationsPath := filepath.Join(o.dir, "violations.txt")
	if err := os.WriteFile(violationsPath, []byte(strings.Join(append(r.check.Violations, ""), "\n")), 0o644); err != nil {
		r.problem("write %s: %v", violationsPath, err)
	} else if len(r.check.Violations) > 0 {
		progressf("every violation: %s", violationsPath)
	}
	return r, nil
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
		{"refunds at the PSP", r.check.PSPRefunds},
		{"ambiguous (hanging-card) charges", r.check.AmbiguousCharges},
		{"insufficient-stock cancellations", r.check.InsufficientStock},
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
	if n := len(r.check.Violations); n > 0 {
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
	for i, v := range r.check.Violations {
		if i == maxShown {
			fmt.Fprintf(w, "violation: … and %d more\n", len(r.check.Violations)-maxShown)
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
	row("orders in the database", r.check.Tables["orders"])
	row("confirmed", r.check.Statuses["CONFIRMED"])
	row("cancelled", r.check.Statuses["CANCELLED"])
	for _, class := range slices.Sorted(maps.Keys(r.check.Cancelled)) {
		row("  cancelled: "+class, r.check.Cancelled[class])
	}
	row("pending", r.check.Statuses["PENDING"])
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
	for _, t := range slices.Sorted(maps.Keys(r.check.Tables)) {
		row("rows read: "+t, r.check.Tables[t])
	}
	row("quiet after (settle window "+settleWindow.String()+")", r.quietAfter.Round(time.Millisecond))
	byRule := map[string]int{}
	for _, v := range r.check.Violations {
		rule, _, _ := strings.Cut(v, ":")
		byRule[rule]++
	}
	for _, rule := range slices.Sorted(maps.Keys(byRule)) {
		row("violations: "+rule, byRule[rule])
	}
	row("violations", len(r.check.Violations))
	row("wall time", r.wall.Round(time.Second))
}
