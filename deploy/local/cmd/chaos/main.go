// Command chaos is the chaos harness of the checkout saga: it runs the native
// stack with two replicas each of order, inventory and payment, drives many
// concurrent checkouts through the gateway, kills service processes at
// random moments, makes consumers crash between handling a message and
// committing it, waits for the system to go quiet, and then checks the
// saga's invariants (I1–I5 of the design brief) directly in the databases
// and in the payment provider simulator's records.
//
// Usage (make chaos builds the programs and runs it at full size):
//
//	chaos [-orders 500] [-kills 20] [-kill-interval 1s] [-concurrency 16] [-seed 0]
//	      [-dir .run/chaos] [-bin .run/bin] [-consul .run/tools/consul]
//	      [-quiet-timeout 3m] [-crash-probability 0.002]
//
// A run lasts about kills × kill-interval plus start-up and the settling
// (a minute at least): about two minutes CI-sized (500 orders, 20 kills),
// about 20 minutes for make chaos (10,000 orders, 1,000 kills).
//
// Flags:
//
//	-orders N             checkouts to place (default 500)
//	-kills N              SIGKILLs of order, inventory and payment processes (default 20)
//	-concurrency N        checkouts in flight at once (default 16)
//	-seed N               random seed of the order mix and the kills; 0 picks one (printed)
//	-dir DIR              run directory: the PostgreSQL cluster, the broker's data and
//	                      chaos.log, every process's output (default .run/chaos; emptied first)
//	-bin DIR              the built programs (default .run/bin)
//	-consul PATH          the Consul agent (default .run/tools/consul; make slow-tools builds it)
//	-quiet-timeout D      how long the stack may take to settle once faults stop, the
//	                      settle window included (default 3m); longer fails the run
//	-crash-probability P  probability that a consumer exits after handling a message and
//	                      before committing it (the *_CHAOS_CRASH_AFTER_HANDLE variables;
//	                      default 0.002)
//	-kill-interval D      mean time between kills (default 1s); orders are paced at
//	                      orders/(kills×interval) per second so that the kills span the run
//	-ready-timeout D      how long a process may take to become ready (default 1m)
//
// The stack: PostgreSQL (pkg/pgcluster; the two replicas of a service share
// its database), a Consul agent (package devagent, as make run-full runs
// it: every service registers there and the gateway finds the healthy
// replicas of order and inventory through it, retrying a checkout on the
// other replica when the one it picked was just killed), the Kafka-protocol
// broker, the PSP simulator and the gateway run once and are never killed
// (the broker loses auto-created topics on a crash; the PSP is the third
// party whose records are the ground truth of I3 and I4). The replicas get short saga and PSP timeouts so that
// timeouts and compensations happen within the run. Processes are started,
// probed and stopped by package supervise, as the launcher does.
//
// The mix of checkouts: about 70% with a card that succeeds, 10% declined,
// 5% declined for insufficient funds, 5% with the card whose charge hangs,
// and 10% for products with little or no stock, so that some are refused. A
// request that fails with 5xx, 429 or a connection error is retried with the
// same Idempotency-Key; orders are counted by the ids the gateway answered.
//
// Duplicate deliveries are counted from the services' logs (a killed
// process's metrics die with it): participants log "saga barrier outcome"
// for every command their barrier did not let through, and the
// orchestrator logs "saga reply ignored" (at debug, which the order replicas
// run at) for stale replies.
//
// Once the orders are placed and the kills done, the faults stop: every
// replica is restarted, one at a time and gracefully, without the crash
// injection. The stack then runs on for at least settleWindow (the longest
// retry backoff) and until nothing is pending, no saga is in flight, every
// outbox is sent and no consumer group lags; not settling within
// -quiet-timeout fails the run. The replicas stop, and then the snapshot is
// read: the PSP's records, the dead-letter topics, the databases.
// invariants.Verify (package deploy/local/internal/invariants, which the
// launcher's tests share) judges it against the ground truth the harness
// kept (the catalog before the run, every checkout it asked for) and shows
// that the database refuses negative stock (I5).
//
// The program prints a summary and exits non-zero on any violation, on an
// order not placed, on a stack that did not settle, on a fault kind that
// never happened (kills, crashes after handle, barrier-seen redeliveries,
// PSP refunds, ambiguous hanging-card charges, insufficient-stock
// cancellations), or if the checker could not read what it needs (an empty
// table that must have rows counts as unreadable).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
}

// options are the harness's flags.
type options struct {
	orders           int
	kills            int
	concurrency      int
	seed             uint64
	dir              string
	bin              string
	consul           string
	quietTimeout     time.Duration
	readyTimeout     time.Duration
	crashProbability float64
	killInterval     time.Duration
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.IntVar(&o.orders, "orders", 500, "checkouts to place")
	fs.IntVar(&o.kills, "kills", 20, "SIGKILLs of order, inventory and payment processes")
	fs.IntVar(&o.concurrency, "concurrency", 16, "checkouts in flight at once")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed of the order mix and the kills; 0 picks one")
	fs.StringVar(&o.dir, "dir", ".run/chaos", "run directory (emptied first): PostgreSQL cluster, broker data, chaos.log")
	fs.StringVar(&o.bin, "bin", ".run/bin", "directory holding the built binaries")
	fs.StringVar(&o.consul, "consul", ".run/tools/consul", "the Consul binary (make slow-tools builds it)")
	fs.DurationVar(&o.quietTimeout, "quiet-timeout", 3*time.Minute, "how long the stack may take to settle once faults stop; longer fails the run")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", time.Minute, "how long a process may take to become ready")
	fs.Float64Var(&o.crashProbability, "crash-probability", 0.002, "probability that a consumer exits after handling a message, before committing it")
	fs.DurationVar(&o.killInterval, "kill-interval", time.Second, "mean time between kills; orders are paced so that the kills span the run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.orders < 1:
		return o, errors.New("-orders: must be at least 1")
	case o.kills < 0:
		return o, errors.New("-kills: must not be negative")
	case o.concurrency < 1:
		return o, errors.New("-concurrency: must be at least 1")
	case o.readyTimeout <= 0 || o.killInterval <= 0:
		return o, errors.New("-ready-timeout, -kill-interval: must be positive")
	case o.consul == "":
		return o, errors.New("-consul: the Consul binary is required (make slow-tools builds it)")
	case o.quietTimeout < settleWindow:
		return o, fmt.Errorf("-quiet-timeout: must be at least the settle window, %s", settleWindow)
	case !(o.crashProbability >= 0 && o.crashProbability <= 1):
		return o, errors.New("-crash-probability: must be from 0 to 1")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(stdout, "chaos: %d orders, %d kills, concurrency %d, seed %d\n", o.orders, o.kills, o.concurrency, o.seed)
	r, err := runChaos(ctx, o, stdout)
	if r == nil {
		return err
	}
	r.wall = time.Since(start)
	r.print(stdout)
	return errors.Join(err, r.err())
}
