// Command psp runs the payment service provider simulator: a stand-in for
// the third party that charges cards, with test cards that decline or hang,
// idempotency keys and faults switchable at run time. It keeps its state in
// memory; a restart forgets every charge.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/services/psp/simulator"
)

func main() { os.Exit(process.Main("psp", defaultHTTPAddr, run)) }

// run serves the simulator until ctx ends, then drains HTTP.
func run(ctx context.Context, getenv func(string) string, stdout io.Writer) (err error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := logging.New(stdout, "psp", cfg.LogLevel)
	log.Info("starting", slog.Any("config", cfg))

	sim := simulator.New(simulator.Settings{Hang: cfg.Hang, Log: log})
	// Held responses (hanging card, latency) would otherwise outlive the
	// drain timeout: release them as soon as shutdown begins.
	stopRelease := context.AfterFunc(ctx, sim.Close)
	defer stopRelease()

	proc, err := process.Start(ctx, "psp", cfg.Config, getenv, log) // no dependencies: ready while serving
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, proc.Close()) }()
	sim.Routes(proc.Router)

	return proc.Run(ctx)
}
