// Command load runs one of the shop's load scenarios (loadtest/scenarios.json)
// against a running gateway, open loop, and exits 1 when a threshold is
// breached (2 when the run could not be made):
//
//	load -scenario checkout [-base http://127.0.0.1:8080] [-smoke] [-window 1m]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/microshop/microshop/loadtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "browse", "the scenario of loadtest/scenarios.json to run")
	base := fs.String("base", "http://127.0.0.1:8080", "the gateway's base URL")
	smoke := fs.Bool("smoke", false, "run the scenario's smoke phases (seconds) instead of its full ones")
	window := fs.Duration("window", 0, "also report requests, failures and p99 per window of this length (e.g. 1m for a soak)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	defs, err := loadtest.Load()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	report, err := loadtest.Run(ctx, defs, *scenario, loadtest.Options{BaseURL: *base, Smoke: *smoke, Log: stdout, Window: *window})
	if err != nil {
		fmt.Fprintln(stderr, "load:", err)
		return 2
	}
	fmt.Fprint(stdout, report)
	if !report.Passed() {
		fmt.Fprintln(stdout, "FAIL: a threshold was breached")
		return 1
	}
	fmt.Fprintln(stdout, "PASS")
	return 0
}
