// Package lifecycle runs a service's background work around its HTTP server
// and stops it in order: the start-and-stop choreography of a service's run
// function, in one place.
//
// A service that consumes Kafka and relays an outbox must stop in a fixed
// order when it is told to: HTTP drains first, then the consumer finishes the
// message in hand, then what the consumer's handlers feed (the outbox relay)
// publishes what they wrote, and only then are the Kafka writer and the
// database closed. Each of those steps must wait for the one before to have
// returned, or a handler writes to a closed outbox or a relay to a closed
// writer. [Run] does that: the background tasks run on contexts of their own,
// which the caller's context does not cancel, and are stopped one at a time,
// last started first, once serving has ended.
//
// Why not a library: golang.org/x/sync/errgroup cancels one context shared by
// every goroutine, so they all stop at once; github.com/oklog/run calls every
// actor's interrupt and only then waits for the actors, so the relay may stop
// while the consumer still handles a message; github.com/thejerf/suture
// restarts a failed service instead of stopping the process, and stops a
// supervisor's services concurrently. None stops one task after another
// returned, which is the whole point here, and the helper is short.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// ErrTaskEnded is matched by the error of [Run] when a task's Run returned
// nil before it was stopped: background work that ends on its own is a bug,
// and the service stops rather than go on without it.
var ErrTaskEnded = errors.New("returned before it was stopped")

// Task is a piece of background work of a service, such as an outbox relay or
// a Kafka consumer.
type Task struct {
	// Name identifies the task in errors and logs, e.g. "outbox relay".
	Name string
	// Run does the work until ctx ends, then returns nil, promptly: Run
	// waits for it as long as it takes. An error, or a return before ctx
	// ended, means the task failed; the service then stops.
	Run func(ctx context.Context) error
}

// NoError adapts the Run method of work that cannot fail, which returns
// nothing, to [Task.Run].
func NoError(run func(ctx context.Context)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		run(ctx)
		return nil
	}
}

// Run starts tasks in the order given, each in its own goroutine and on a
// context of its own that keeps ctx's values but not its cancellation, and
// calls serve. serve's context ends when ctx ends or a task fails; serve is
// expected to return then, after draining (httpserver.Serve does).
//
// Once serve has returned, Run stops the tasks in reverse order, like
// deferred calls: it cancels the last task's context, waits for its Run to
// return, then does the same with the one before, and so on. So a task
// should be listed after the tasks it feeds: a consumer whose handlers write
// to the outbox after the outbox relay.
//
// A task that fails (returns an error, or returns before it was stopped) is
// logged to log and ends serving, and the others are stopped as above. Run
// returns serve's error joined with the tasks' errors, in stop order, each
// prefixed with its task's name; nil when serve and every task returned nil.
// Run calls serve right after starting the tasks' goroutines: it does not
// wait for a task to be ready.
func Run(ctx context.Context, log *slog.Logger, serve func(ctx context.Context) error, tasks ...Task) error {
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()

	type running struct {
		stop context.CancelFunc
		done chan error
	}
	started := make([]running, 0, len(tasks))
	for _, task := range tasks {
		taskCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
		r := running{stop: stop, done: make(chan error, 1)}
		go func() {
			err := task.Run(taskCtx)
			stopped := taskCtx.Err() != nil
			if err == nil && !stopped {
				err = ErrTaskEnded
			}
			if err != nil {
				err = fmt.Errorf("%s: %w", task.Name, err)
			}
			if err != nil && !stopped {
				log.Error("background task failed; stopping", slog.String("task", task.Name), slog.Any("error", err))
				stopServing()
			}
			r.done <- err
		}()
		started = append(started, r)
	}

	errs := []error{serve(serveCtx)}
	for _, r := range slices.Backward(started) {
		r.stop()
		errs = append(errs, <-r.done)
	}
	return errors.Join(errs...)
}

// RunFunc is a program's run function: it does the program's work until ctx
// ends, reading its configuration through getenv and logging to stdout.
type RunFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer) error

// Main is the body of every microshop program's main: it calls run with a
// context cancelled on SIGINT or SIGTERM, the process environment and
// standard output, prints run's error on standard error as "<name>: <error>",
// and returns the exit status for main to pass to os.Exit (0, or 1 after an
// error). Keeping the exit in main lets deferred calls in run finish first.
func Main(name string, run RunFunc) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		return 1
	}
	return 0
}
