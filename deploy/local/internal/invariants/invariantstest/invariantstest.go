// Package invariantstest ends a test that drove checkouts through the shop:
// it waits until the stack is quiet and checks the saga's invariants I1–I5
// against the ground truth the test kept (package invariants).
package invariantstest

import (
	"testing"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
)

// Settle waits until nothing is in flight in src — every order final,
// every outbox sent, no consumer lagging — for at least two seconds in a
// row and at most three minutes (a test failure otherwise), calls stop if
// it is not nil (to stop the services, so that nothing changes while it
// reads), and checks I1–I5 against truth: each violation is a test error,
// and so is a count of orders other than the checkouts the gateway
// answered. It logs the outcome and returns the checker's result for the
// test's own figures.
func Settle(t testing.TB, src invariants.Sources, truth invariants.GroundTruth, stop func()) *invariants.Result {
	t.Helper()
	ctx := t.Context()
	quiet, err := invariants.AwaitQuiet(ctx, src.Databases, src.Kafka, 2*time.Second, 3*time.Minute)
	if err != nil {
		t.Fatalf("every accepted checkout must settle: %v", err)
	}
	if stop != nil {
		stop()
	}
	r, err := invariants.Verify(ctx, src, truth)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range r.Violations {
		t.Errorf("violation: %s", v)
	}
	if r.Tables["orders"] != len(truth.Answered) {
		t.Errorf("the checker read %d orders, the gateway answered %d", r.Tables["orders"], len(truth.Answered))
	}
	t.Logf("quiet %v after the load; %d orders %v, cancelled %v; %d violations of I1–I5",
		quiet.Round(time.Millisecond), r.Tables["orders"], r.Statuses, r.Cancelled, len(r.Violations))
	return r
}
