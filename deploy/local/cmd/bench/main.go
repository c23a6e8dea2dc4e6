// Command bench measures the checkout saga end to end: completed sagas per
// second and the time from an order's POST to its final status.
//
// It starts the shop with the launcher binary (as make run and make run-full
// do, on free loopback ports and a throwaway directory by default), logs in
// as the demo customers, restocks a few products through the admin API so
// orders never run out of stock, then places orders through the gateway with
// the PSP simulator's good test card, each with a unique Idempotency-Key:
//
//   - -rate N > 0: open loop, N orders per second on a fixed schedule,
//     whatever the shop's answers; a slow shop does not slow the arrivals.
//   - -rate 0: saturation, closed loop: -concurrency workers each place an
//     order and wait for its final event before placing the next.
//
// Completion is observed on the order.events topic with a Kafka reader, so
// measuring adds no polling load on the services. An order's time to final
// status is the arrival of its OrderConfirmed or OrderCancelled at the reader
// minus the moment its POST was sent, both read from this process's monotonic
// clock: that is what a client following order.events waits, outbox relay and
// broker delivery included. The event's occurred_at (stamped by the order
// service when it writes the final status, before the outbox relay publishes
// it) is reported beside it, to show how much of the wait is delivery.
//
// Orders sent during -warmup are placed but not measured. Throughput counts
// the final events of this run's orders that arrive during the -duration
// window after it; latencies are those of the orders sent in that window,
// waited for up to -drain after it. At the end the stack is stopped with
// SIGINT, and bench fails unless the launcher exits 0.
//
// The CPU time each process of the stack used in the window is read from
// /proc. With -cost, bench also reports what one completed saga cost on
// average: CPU microseconds per process, Kafka messages produced and
// consumed per service (from the services' /metrics), and in -mode full SQL
// transactions and statements per database, with the most frequent
// statements (from pg_stat_database and pg_stat_statements, which bench
// has the launcher preload). See cost.go. With -profile dir, bench also
// writes a CPU profile of the window of every service to dir (see
// profile.go).
//
// With -reads it measures reads instead: -concurrency closed-loop workers
// GET /api/v1/products through the gateway during -warmup and -duration,
// and it reports the window's requests per second, latency percentiles and
// the CPU µs each process spent per request. With -jaeger the launcher also
// starts Jaeger and the services export their traces to it, sampled as the
// OTEL_TRACES_SAMPLER variables of bench's environment say (make
// bench-telemetry compares tracing off, at 100 % and at 10 %).
//
// With -consul (-mode full) the launcher starts a Consul agent and the
// gateway finds order and inventory there; with -replicas N as well it runs
// N replicas of order, inventory and payment (the launcher's -replicas), and
// bench counts their /metrics together: a scale-out on one machine, run
// against -replicas 1 with the same agent.
//
// Usage:
//
//	bench [-mode embedded|full] [-rate N | -concurrency N] [-duration 30s] [-warmup 5s] [-cost] [-profile dir] [-bin .run/bin]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/microshop/microshop/pkg/discovery/devagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// pspOffset is the launcher's port of the payment provider simulator
// relative to -port-base; bench needs the whole range free.
const pspOffset = 10

// replicaPortStep is how far above replica r−1's port the launcher puts
// replica r's (its -replicas).
const replicaPortStep = 100

// options are the benchmark's flags.
type options struct {
	mode        string
	rate        float64 // orders per second; 0 means saturation
	concurrency int     // closed-loop workers at saturation
	duration    time.Duration
	warmup      time.Duration
	drain       time.Duration
	bin         string
	dir         string            // "" means a new temporary directory, removed at the end
	portBase    int               // 0 means free ports
	brokerPort  int               // 0 means a free port
	products    int               // products the orders are spread over
	maxInFlight int               // open loop: POSTs awaiting an answer before arrivals are skipped
	cost        bool              // report the cost per saga
	top         int               // -cost, -mode full: statements listed
	pgPort      int               // -cost, -mode full: the PostgreSQL cluster's port, picked by run
	profileDir  string            // where to write the services' CPU profiles; "" writes none
	jaeger      string            // Jaeger binary the launcher starts and the services export to; "" none
	consul      string            // Consul binary the launcher starts, the gateway resolving through it; "" none
	replicas    int               // of order, inventory and payment (the launcher's -replicas)
	reads       bool              // measure GET /api/v1/products instead of checkouts
	adminAddrs  map[string]string // -profile: each service's admin address, picked by run

	overload       bool                       // -overload: the limiters side by side past capacity
	algorithms     []string                   // -overload: pkg/limit algorithms compared, "none" first
	levels         []float64                  // -overload: offered loads, multiples of capacity
	slo            time.Duration              // -overload: latency within which a success counts as goodput
	startRate      float64                    // -overload: first rate of the capacity search
	stepDuration   time.Duration              // -overload: window of each step of the capacity search
	pause          time.Duration              // -overload: the longest wait for the stack to settle after a level
	requestTimeout time.Duration              // -overload: a request unanswered this long is an error
	retryStorm     bool                       // -overload: also the retry storms at 3 C
	mix            string                     // -overload: the traffic, a key of mixes
	rules          map[string]json.RawMessage // -overload: the rules every candidate starts from
	capacity       float64                    // -overload: C given, not searched; 0 searches
	stackCPUs      string                     // taskset's CPU list for the stack; "" does not pin it
	svg            string                     // -overload: where to draw the figure; "" draws none
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.mode, "mode", "embedded", "embedded (SQLite files) or full (a throwaway PostgreSQL cluster), as the launcher's -mode")
	fs.Float64Var(&o.rate, "rate", 0, "open-loop arrival rate in orders per second; 0 measures saturation with -concurrency closed-loop workers")
	fs.IntVar(&o.concurrency, "concurrency", 64, "saturation (-rate 0): workers, each placing an order and waiting for its final event")
	fs.DurationVar(&o.duration, "duration", 30*time.Second, "measurement window")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "load before the measurement window, not measured")
	fs.DurationVar(&o.drain, "drain", 30*time.Second, "how long after the window to wait for the final events of orders sent in it")
	fs.StringVar(&o.bin, "bin", ".run/bin", "directory holding the launcher and the programs it starts (make build)")
	fs.StringVar(&o.dir, "dir", "", "run directory for the launcher (databases, broker log); empty: a new temporary directory, removed afterwards")
	fs.IntVar(&o.portBase, "port-base", 0, "the launcher's -port-base; 0 picks free ports")
	fs.IntVar(&o.brokerPort, "broker-port", 0, "the launcher's -broker-port; 0 picks a free port")
	fs.IntVar(&o.products, "products", 8, "number of products the orders are spread over (one line of quantity 1 each)")
	fs.IntVar(&o.maxInFlight, "max-in-flight", 2000, "open loop: POSTs awaiting an answer beyond which an arrival is skipped and counted")
	fs.BoolVar(&o.cost, "cost", false, "report the cost per completed saga: CPU µs per process, Kafka messages per service and, in -mode full, SQL transactions and statements per database (pg_stat_statements)")
	fs.IntVar(&o.top, "top", 12, "-cost in -mode full: how many statements to list, the most frequent and the slowest in total")
	fs.StringVar(&o.jaeger, "jaeger", "", "Jaeger binary (make slow-tools: .run/tools/jaeger) the launcher starts on free ports, the services exporting their traces to it; sampling follows the OTEL_TRACES_SAMPLER variables of bench's environment; empty: nothing exported")
	fs.StringVar(&o.consul, "consul", "", "-mode full: Consul binary (make slow-tools: .run/tools/consul) the launcher starts on free ports, the services registering there and the gateway finding order and inventory through it")
	fs.IntVar(&o.replicas, "replicas", 1, "replicas of order, inventory and payment, as the launcher's -replicas (more than 1 needs -mode full and -consul)")
	fs.BoolVar(&o.reads, "reads", false, "measure reads instead of checkouts: -concurrency closed-loop workers GET /api/v1/products through the gateway; requests/s, latency percentiles and CPU µs per request of every process")
	fs.StringVar(&o.profileDir, "profile", "", "directory to write a CPU profile of the window of every service to (<service>.pprof, from its /debug/pprof on an admin address bench chooses); empty: none")
	fs.BoolVar(&o.overload, "overload", false, "compare pkg/limit's adaptive limiters past capacity: find capacity C without a limiter, then offer each -levels multiple of C, open loop, with each -algorithms candidate; see overload.go")
	algorithms := fs.String("algorithms", "none,sentinel,kratos,failsafe,gradient2,vegas", "-overload: the candidates, comma-separated (none is no limiter)")
	levels := fs.String("levels", "0.5,1,2,3,5", "-overload: the offered loads, comma-separated multiples of C")
	fs.DurationVar(&o.slo, "slo", 200*time.Millisecond, "-overload: a successful answer within this latency counts as goodput")
	fs.Float64Var(&o.startRate, "start-rate", 50, "-overload: the first rate of the capacity search, raised by a quarter each step")
	fs.DurationVar(&o.stepDuration, "step", 5*time.Second, "-overload: the window of each step of the capacity search (after -warmup)")
	fs.DurationVar(&o.pause, "settle", time.Minute, "-overload: after each level, wait at most this long for the stack to work off its queues (its CPU use under 0.2 cores)")
	fs.DurationVar(&o.requestTimeout, "request-timeout", 5*time.Second, "-overload: a request unanswered this long counts as an error")
	fs.BoolVar(&o.retryStorm, "retry-storm", true, "-overload: also offer 3 C with clients retrying rejections after Retry-After and at once, without a limiter and with the chosen one")
	rules := fs.String("rules", "{}", `-overload: a pkg/limit rules document (JSON) every candidate's rules start from, in every service; each candidate sets "adaptive" in it (e.g. {"routes": {"POST /api/v1/orders": {"priority": "high", "rate": 30, "burst": 30}}})`)
	fs.Float64Var(&o.capacity, "capacity", 0, "-overload: capacity C in requests/s, given instead of searched (to offer two runs the same rates); the unloaded p99 is then measured at 0.3 C. 0 searches")
	fs.StringVar(&o.mix, "mix", "shop", "-overload: the traffic: shop (browsing, logins, checkouts and their polling) or browse (reads only, no saga behind any answer)")
	fs.StringVar(&o.stackCPUs, "stack-cpus", "", "taskset CPU list the launcher and the stack run on (e.g. 1); empty: not pinned")
	fs.StringVar(&o.svg, "svg", "", "-overload: write the figure (goodput and admitted p99 against offered load) to this SVG file")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.overload {
		o.algorithms = strings.Split(*algorithms, ",")
		for _, f := range strings.Split(*levels, ",") {
			v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || v <= 0 || v > 20 {
				return o, fmt.Errorf("-levels: %q is not a multiple of capacity from 0 to 20", f)
			}
			o.levels = append(o.levels, v)
		}
		if err := json.Unmarshal([]byte(*rules), &o.rules); err != nil || o.rules == nil {
			return o, fmt.Errorf("-rules: not a JSON object: %v", err)
		}
		if _, ok := o.rules["adaptive"]; ok {
			return o, errors.New(`-rules: "adaptive" is each candidate's; -algorithms lists them`)
		}
		if !slices.Contains(o.algorithms, "none") {
			return o, errors.New("-algorithms: none (no limiter) is the baseline and must be in the list")
		}
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.mode != "embedded" && o.mode != "full":
		return o, fmt.Errorf("-mode: %q is not embedded or full", o.mode)
	case o.rate < 0 || o.rate > 100_000:
		return o, fmt.Errorf("-rate: %v is not from 0 to 100000", o.rate)
	case o.concurrency < 1 || o.concurrency > 10_000:
		return o, fmt.Errorf("-concurrency: %d is not from 1 to 10000", o.concurrency)
	case o.duration <= 0 || o.duration > time.Hour:
		return o, fmt.Errorf("-duration: %s is not more than 0 and at most 1h", o.duration)
	case o.warmup < 0 || o.warmup > time.Hour:
		return o, fmt.Errorf("-warmup: %s is not from 0 to 1h", o.warmup)
	case o.drain <= 0 || o.drain > 10*time.Minute:
		return o, fmt.Errorf("-drain: %s is not more than 0 and at most 10m", o.drain)
	case o.portBase < 0 || o.portBase > 65535-pspOffset:
		return o, fmt.Errorf("-port-base: %d is not 0 or a port up to %d", o.portBase, 65535-pspOffset)
	case o.brokerPort < 0 || o.brokerPort > 65535:
		return o, fmt.Errorf("-broker-port: %d is not 0 or a port up to 65535", o.brokerPort)
	case o.products < 1 || o.products > 100:
		return o, fmt.Errorf("-products: %d is not from 1 to 100", o.products)
	case o.maxInFlight < 1 || o.maxInFlight > 100_000:
		return o, fmt.Errorf("-max-in-flight: %d is not from 1 to 100000", o.maxInFlight)
	case o.capacity < 0 || o.capacity > 20_000:
		return o, fmt.Errorf("-capacity: %v is not from 0 to 20000", o.capacity)
	case mixes[o.mix] == nil:
		return o, fmt.Errorf("-mix: %q is not shop or browse", o.mix)
	case o.top < 0 || o.top > 1000:
		return o, fmt.Errorf("-top: %d is not from 0 to 1000", o.top)
	case o.consul != "" && o.mode != "full":
		return o, fmt.Errorf("-consul: the launcher runs Consul in -mode full only")
	case o.replicas < 1 || o.replicas > 9:
		return o, fmt.Errorf("-replicas: %d is not from 1 to 9", o.replicas)
	case o.replicas > 1 && o.consul == "":
		return o, fmt.Errorf("-replicas: %d replicas need -mode full and -consul (the gateway finds the replicas there)", o.replicas)
	case o.replicas > 1 && (o.profileDir != "" || o.overload):
		return o, fmt.Errorf("-replicas: not with -profile (one admin address per service) or -overload")
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parseFlags(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.dir == "" {
		// The postgres user must enter the directory in -mode full, and
		// os.MkdirTemp's directories are private.
		if o.dir, err = os.MkdirTemp("", "microshop-bench-"); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(o.dir)) }()
		if err := os.Chmod(o.dir, 0o755); err != nil {
			return err
		}
	} else if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	if o.overload {
		return runOverload(ctx, o, stdout) // a stack of its own for every candidate
	}
	if o.portBase == 0 {
		if o.portBase, err = freePortRange(max(pspOffset, replicaPortStep*(o.replicas-1)+3) + 1); err != nil {
			return err
		}
	}
	if o.brokerPort == 0 {
		if o.brokerPort, err = freePortRange(1); err != nil {
			return err
		}
	}

	launcherArgs := []string{"-mode", o.mode, "-dir", o.dir, "-bin", o.bin,
		"-port-base", strconv.Itoa(o.portBase), "-broker-port", strconv.Itoa(o.brokerPort)}
	pgStats := o.cost && o.mode == "full"
	if pgStats {
		if o.pgPort, err = freePortRange(1); err != nil {
			return err
		}
		launcherArgs = append(launcherArgs, "-postgres-port", strconv.Itoa(o.pgPort), "-postgres-setting", pgStatStatements)
	}

	if o.jaeger != "" {
		query, err := freePortRange(2)
		if err != nil {
			return err
		}
		otlp, err := freePortRange(2)
		if err != nil {
			return err
		}
		launcherArgs = append(launcherArgs, "-jaeger", o.jaeger,
			"-jaeger-port", strconv.Itoa(query+1), "-otlp-port", strconv.Itoa(otlp+1))
	}

	consulPort := 0
	if o.consul != "" {
		if consulPort, err = freePortRange(4); err != nil { // HTTP, then the server's and gossip ports
			return err
		}
		launcherArgs = append(launcherArgs, "-consul", o.consul, "-consul-port", strconv.Itoa(consulPort),
			"-replicas", strconv.Itoa(o.replicas))
	}

	var env []string
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
		base, err := freePortRange(len(services))
		if err != nil {
			return err
		}
		env, o.adminAddrs = adminEnv(base)
	}

	logPath := filepath.Join(o.dir, "launcher.log")
	l, err := startLauncher(filepath.Join(o.bin, "launcher"), logPath, env, launcherArgs...)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "launcher: -mode %s, gateway 127.0.0.1:%d, broker 127.0.0.1:%d, output in %s\n",
		o.mode, o.portBase, o.brokerPort, logPath)
	defer func() {
		if stopErr := l.stop(time.Minute); stopErr != nil {
			err = errors.Join(err, fmt.Errorf("stop the stack: %w (see %s)", stopErr, logPath))
			return
		}
		fmt.Fprintln(stdout, "launcher: stopped with SIGINT, exit status 0")
	}()
	if err := l.waitReady(ctx, 3*time.Minute); err != nil {
		return fmt.Errorf("%w (see %s)", err, logPath)
	}
	if o.consul != "" {
		// The gateway finds the services in Consul, where a ready process
		// shows as passing only after its first check.
		want := map[string]int{"gateway": 1, "order": o.replicas, "inventory": o.replicas, "payment": o.replicas}
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		err := devagent.WaitPassing(wait, "127.0.0.1:"+strconv.Itoa(consulPort), want)
		cancel()
		if err != nil {
			return fmt.Errorf("the stack's services in Consul: %w (see %s)", err, logPath)
		}
	}

	if o.reads {
		r, err := measureReads(ctx, o, l.pid(), "http://127.0.0.1:"+strconv.Itoa(o.portBase))
		if err != nil {
			return err
		}
		r.print(stdout)
		return nil
	}

	var pg *postgres
	if pgStats {
		if pg, err = connectPostgres(ctx, o.pgPort); err != nil {
			return err
		}
		defer func() { err = errors.Join(err, pg.close(context.WithoutCancel(ctx))) }()
	}
	res, err := measure(ctx, o, l.pid(), pg, "http://127.0.0.1:"+strconv.Itoa(o.portBase), "127.0.0.1:"+strconv.Itoa(o.brokerPort))
	if err != nil {
		return err
	}
	res.print(stdout)
	return nil
}

// freePortRange returns the first of n consecutive ports on 127.0.0.1 that
// are free now. Another program may take one before the launcher binds it;
// the launcher then fails to start, and so does the benchmark.
func freePortRange(n int) (int, error) {
	for range 100 {
		base := 20000 + rand.IntN(30000)
		var lns []net.Listener
		for i := range n {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base+i))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		for _, ln := range lns {
			ln.Close()
		}
		if len(lns) == n {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free ports", n)
}
