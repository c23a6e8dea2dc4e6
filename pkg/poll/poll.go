// Package poll waits in tests for something another goroutine or process
// does: it calls a condition every Interval until it holds, and fails the
// test, saying what it waited for, once the context is done. It is the
// alternative to a sleep used as synchronisation: it waits no longer than it
// must, and on a loaded machine no shorter.
//
// The bound is the context's: pass one with a deadline, for example
//
//	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
//	defer cancel()
//	poll.Until(ctx, t, "the charge visible", func() bool { … })
package poll

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Interval is the pause between two calls of a condition.
const Interval = 10 * time.Millisecond

// Until calls cond, at once and then every Interval, until it returns true.
// When ctx is done first it fails t with t.Fatalf, naming what. Call it from
// the test's goroutine, as Fatalf requires.
func Until(ctx context.Context, t testing.TB, what string, cond func() bool) {
	t.Helper()
	UntilNil(ctx, t, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// UntilNil calls try, at once and then every Interval, until it returns nil.
// When ctx is done first it fails t with t.Fatalf, naming what and quoting
// try's last error. Call it from the test's goroutine.
func UntilNil(ctx context.Context, t testing.TB, what string, try func() error) {
	t.Helper()
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for {
		err := try()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			if errors.Is(err, errNotYet) {
				t.Fatalf("waiting for %s: %v", what, context.Cause(ctx))
			} else {
				t.Fatalf("waiting for %s: %v; last: %v", what, context.Cause(ctx), err)
			}
			return // for a testing.TB whose Fatalf returns
		case <-tick.C:
		}
	}
}

// errNotYet stands for Until's condition while it is false.
var errNotYet = errors.New("condition false")
