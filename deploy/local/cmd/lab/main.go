// Command lab checks the workshop's labs (labs/README.md) against the
// running shop: `lab check N` reads the stack `make run-full` started —
// Jaeger, Prometheus, Consul, the databases, the services — and says in
// plain words what it saw (✓) and what is still missing, with what to do
// (✗). It exits 0 when the learner has done and seen what lab N is about,
// 1 otherwise (also when the stack cannot be read).
//
//	lab [flags] check N           make lab-N-check
//	lab [flags] redeliver ORDER   make lab-redeliver ORDER=…: lab 5's duplicate deliveries
//
// The flags default to make run-full's addresses; an empty one means the
// part is not running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/labs"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	s, rest, timeout, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "lab:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch {
	case len(rest) == 2 && rest[0] == "check":
		n, err := strconv.Atoi(rest[1])
		lab, ok := labs.Find(n)
		if err != nil || !ok {
			fmt.Fprintf(stderr, "lab: no lab %q (labs/README.md lists them)\n", rest[1])
			return 2
		}
		return check(ctx, lab, s, stdout)
	case len(rest) == 2 && rest[0] == "redeliver":
		n, err := labs.Redeliver(ctx, s, rest[1])
		if err != nil {
			fmt.Fprintln(stderr, "lab:", err)
			return 1
		}
		fmt.Fprintf(stdout, "delivered %d saga command(s) of order %s again; now look at what the participants did with them (labs/05-duplicates/README.md)\n", n, rest[1])
		return 0
	default:
		fmt.Fprintln(stderr, "usage: lab [flags] check N | lab [flags] redeliver ORDER_ID")
		return 2
	}
}

// check runs lab's check and prints its verdict.
func check(ctx context.Context, lab labs.Lab, s labs.Stack, stdout io.Writer) int {
	fmt.Fprintf(stdout, "Lab %d — %s (labs/%s)\n", lab.Number, lab.Title, lab.Dir)
	v, err := lab.Check(ctx, s)
	fmt.Fprint(stdout, v)
	if err != nil {
		fmt.Fprintf(stdout, "  ✗ the stack could not be read: %v\n    Is make run-full running, at the addresses of `go doc ./deploy/local/cmd/lab`?\n", err)
		return 1
	}
	if !v.Passed() {
		fmt.Fprintf(stdout, "Not yet: do what the ✗ lines say, then run make lab-%d-check again.\n", lab.Number)
		return 1
	}
	fmt.Fprintf(stdout, "Done: lab %d seen through. Think about the questions at the end of its README.\n", lab.Number)
	return 0
}

// parseFlags reads the stack's addresses and the check's timeout.
func parseFlags(args []string, stderr io.Writer) (labs.Stack, []string, time.Duration, error) {
	var s labs.Stack
	var postgres string
	var timeout time.Duration
	fs := flag.NewFlagSet("lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.Gateway, "gateway", "http://127.0.0.1:8080", "the gateway's base URL")
	fs.StringVar(&s.PSP, "psp", "http://127.0.0.1:8090", "the payment provider simulator's base URL")
	fs.StringVar(&s.Consul, "consul", "http://127.0.0.1:8500", "Consul's HTTP API")
	fs.StringVar(&s.Jaeger, "jaeger", "http://127.0.0.1:16686", "Jaeger's query API")
	fs.StringVar(&s.Prometheus, "prometheus", "http://127.0.0.1:9090", "Prometheus' base URL")
	fs.StringVar(&s.Probe, "probe", "http://127.0.0.1:9400", "the eBPF probe's base URL (make run-full as root)")
	fs.StringVar(&s.Broker, "broker", "127.0.0.1:9092", "the Kafka-protocol broker's address")
	fs.StringVar(&postgres, "postgres", "127.0.0.1:55432", "host:port of make run-full's PostgreSQL cluster (PG_PORT), where orderdb, inventorydb and paymentdb are")
	fs.DurationVar(&timeout, "timeout", time.Minute, "how long a check may take")
	if err := fs.Parse(args); err != nil {
		return s, nil, 0, err
	}
	if timeout <= 0 {
		return s, nil, 0, errors.New("-timeout: must be positive")
	}
	s.Databases = labs.Databases(postgres)
	for name, u := range map[string]string{"gateway": s.Gateway, "psp": s.PSP, "consul": s.Consul, "jaeger": s.Jaeger,
		"prometheus": s.Prometheus, "probe": s.Probe} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			return s, nil, 0, fmt.Errorf("-%s: %q is not a base URL like http://127.0.0.1:8080", name, u)
		}
	}
	return s, fs.Args(), timeout, nil
}
