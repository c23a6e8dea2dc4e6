package saga_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/saga"
)

func TestOrchestrator(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Run("flows", func(t *testing.T) { testFlows(t, b) })
			t.Run("timeout compensates in reverse order one at a time", func(t *testing.T) { testTimeout(t, b) })
			t.Run("refused compensation is retried with backoff", func(t *testing.T) { testCompensationRetry(t, b) })
			t.Run("duplicate and late replies are ignored", func(t *testing.T) { testStaleReplies(t, b) })
			t.Run("a new orchestrator resumes sagas in flight", func(t *testing.T) { testRecovery(t, b) })
			t.Run("two orchestrators racing advance each saga once", func(t *testing.T) { testRace(t, b, false) })
			if b.name == database.Postgres {
				// SQLite has no row locks to begin with.
				t.Run("two orchestrators racing without row locks", func(t *testing.T) { testRace(t, b, true) })
			}
			t.Run("start", func(t *testing.T) { testStart(t, b) })
		})
	}
}

// refuse answers OK to everything but the action of step, which it refuses.
func refuse(step, reason string) func(sentCommand) (bool, bool, string) {
	return func(c sentCommand) (bool, bool, string) {
		if c.Step == step && c.Op == saga.OpAction {
			return true, false, reason
		}
		return true, true, ""
	}
}

// testFlows runs sagas whose participants answer at once, in every way but
// a timeout.
func testFlows(t *testing.T, b backend) {
	tests := []struct {
		name       string
		definition string
		answer     func(sentCommand) (bool, bool, string)
		wantSent   []string
		wantHooks  []string
		wantStatus saga.Status
		wantReason string
		// wantLabel is saga_finished_total's bounded reason label.
		wantLabel string
	}{
		{
			name:       "happy path",
			definition: "checkout",
			answer:     allOK,
			wantSent:   []string{"reserve/action", "charge/action", "ship/action"},
			wantHooks: []string{
				"reserve action STARTED", "reserve action SUCCEEDED",
				"charge action STARTED", "charge action SUCCEEDED",
				"ship action STARTED", "ship action SUCCEEDED",
				"completed",
			},
			wantStatus: saga.StatusCompleted,
		},
		{
			name:       "refusal at step 1 compensates nothing",
			definition: "checkout",
			answer:     refuse("reserve", "out of stock"),
			wantSent:   []string{"reserve/action"},
			wantHooks: []string{
				"reserve action STARTED", "reserve action FAILED",
				"failed: reserve: out of stock",
			},
			wantStatus: saga.StatusFailed,
			wantReason: "reserve: out of stock",
			wantLabel:  "reserve: refused",
		},
		{
			name:       "refusal at step 2 compensates step 1 only",
			definition: "checkout",
			answer:     refuse("charge", "card declined"),
			wantSent:   []string{"reserve/action", "charge/action", "reserve/compensate"},
			wantHooks: []string{
				"reserve action STARTED", "reserve action SUCCEEDED",
				"charge action STARTED", "charge action FAILED",
				"reserve compensate STARTED", "reserve compensate SUCCEEDED",
				"failed: charge: card declined",
			},
			wantStatus: saga.StatusFailed,
			wantReason: "charge: card declined",
			wantLabel:  "charge: refused",
		},
		{
			name:       "refusal at step 3 compensates steps 2 and 1 in reverse order",
			definition: "checkout",
			answer:     refuse("ship", "no courier"),
			wantSent:   []string{"reserve/action", "charge/action", "ship/action", "charge/compensate", "reserve/compensate"},
			wantHooks: []string{
				"reserve action STARTED", "reserve action SUCCEEDED",
				"charge action STARTED", "charge action SUCCEEDED",
				"ship action STARTED", "ship action FAILED",
				"charge compensate STARTED", "charge compensate SUCCEEDED",
				"reserve compensate STARTED", "reserve compensate SUCCEEDED",
				"failed: ship: no courier",
			},
			wantStatus: saga.StatusFailed,
			wantReason: "ship: no courier",
			wantLabel:  "ship: refused",
		},
		{
			name:       "a step without compensation is skipped",
			definition: "notify",
			answer:     refuse("charge", "card declined"),
			wantSent:   []string{"reserve/action", "email/action", "charge/action", "reserve/compensate"},
			wantHooks: []string{
				"reserve action STARTED", "reserve action SUCCEEDED",
				"email action STARTED", "email action SUCCEEDED",
				"charge action STARTED", "charge action FAILED",
				"reserve compensate STARTED", "reserve compensate SUCCEEDED",
				"failed: charge: card declined",
			},
			wantStatus: saga.StatusFailed,
			wantReason: "charge: card declined",
			wantLabel:  "charge: refused",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, openDB(t, b.newURL(t)), newClock())
			e.start(t, tt.definition, "order-1")
			newParticipant(tt.answer).pump(t, e)

			if diff := cmp.Diff(tt.wantSent, sentOps(t, e.db, "order-1")); diff != "" {
				t.Errorf("commands sent (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHooks, hookEvents(t, e.db, "order-1")); diff != "" {
				t.Errorf("hook calls (-want +got):\n%s", diff)
			}
			inst := e.instance(t, "order-1")
			if inst.Status != tt.wantStatus || inst.Reason != tt.wantReason || !inst.DueAt.IsZero() {
				t.Errorf("instance status, reason, due = %s, %q, %v; want %s, %q, zero", inst.Status, inst.Reason, inst.DueAt, tt.wantStatus, tt.wantReason)
			}
			if got := metric(t, e.reg, "saga_finished_total", "definition", tt.definition, "status", string(tt.wantStatus), "reason", tt.wantLabel); got != 1 {
				t.Errorf("saga_finished_total{%s, reason=%q} = %v, want 1", tt.wantStatus, tt.wantLabel, got)
			}
			if got := metric(t, e.reg, "saga_started_total", "definition", tt.definition); got != 1 {
				t.Errorf("saga_started_total = %v, want 1", got)
			}
			var actions, compensations float64
			for _, op := range tt.wantSent {
				step, what, _ := strings.Cut(op, "/")
				if what == saga.OpCompensate {
					compensations++
					if got := metric(t, e.reg, "saga_compensations_total", "definition", tt.definition, "step", step); got != 1 {
						t.Errorf("saga_compensations_total{step=%s} = %v, want 1", step, got)
					}
				} else {
					actions++
				}
			}
			// One observation per operation that ended: each one sent here.
			for op, want := range map[string]float64{saga.OpAction: actions, saga.OpCompensate: compensations} {
				if got := metric(t, e.reg, "saga_step_duration_seconds", "definition", tt.definition, "operation", op); got != want {
					t.Errorf("saga_step_duration_seconds{operation=%s} observations = %v, want %v", op, got, want)
				}
			}
			if got := metric(t, e.reg, "saga_duration_seconds", "definition", tt.definition, "status", string(tt.wantStatus)); got != 1 {
				t.Errorf("saga_duration_seconds{%s} observations = %v, want 1", tt.wantStatus, got)
			}
		})
	}

	t.Run("commands carry correlation, key, deterministic ids, given to the step, and the step's headers", func(t *testing.T) {
		e := newEnv(t, openDB(t, b.newURL(t)), newClock())
		e.start(t, "checkout", "order-1")
		cmds := sent(t, e.db, "order-1")
		if len(cmds) != 1 {
			t.Fatalf("sent %d commands after Start, want 1", len(cmds))
		}
		got := cmds[0]
		want := sentCommand{
			ID:     got.ID,
			SagaID: "order-1",
			Topic:  "inventory",
			MsgKey: "order-1",
			Step:   "reserve",
			Op:     saga.OpAction,
			// The step encoded the id the command is sent with.
			Payload: `{"id":"` + got.ID + `","step":"reserve","op":"action","order":{"id":"order-1"}}`,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("command (-want +got):\n%s", diff)
		}
		// The same saga id, step, op and attempt give the same id in
		// another database.
		other := newEnv(t, openDB(t, b.newURL(t)), newClock())
		other.start(t, "checkout", "order-1")
		if otherID := sent(t, other.db, "order-1")[0].ID; otherID != got.ID {
			t.Errorf("message id = %s in one database and %s in another, want deterministic", got.ID, otherID)
		}
	})
}

// testTimeout drops the reply of step 3's action: its deadline passes, and
// steps 3, 2, 1 are compensated, each only after the previous is
// acknowledged.
func testTimeout(t *testing.T, b backend) {
	e := newEnv(t, openDB(t, b.newURL(t)), newClock())
	e.start(t, "checkout", "order-1")
	e.reply(t, "order-1", "reserve", saga.OpAction, true, "")
	e.reply(t, "order-1", "charge", saga.OpAction, true, "")

	e.clock.Advance(stepTimeout - time.Millisecond)
	e.runOnce(t)
	if got := e.instance(t, "order-1").Status; got != saga.StatusRunning {
		t.Fatalf("status just before the deadline = %s, want RUNNING", got)
	}

	e.clock.Advance(time.Millisecond)
	e.runOnce(t)
	wantSent := []string{"reserve/action", "charge/action", "ship/action", "ship/compensate"}
	if diff := cmp.Diff(wantSent, sentOps(t, e.db, "order-1")); diff != "" {
		t.Fatalf("commands after the deadline (-want +got):\n%s", diff)
	}
	if got := metric(t, e.reg, "saga_instances", "status", "COMPENSATING"); got != 1 {
		t.Errorf("saga_instances{COMPENSATING} = %v, want 1", got)
	}
	if got := metric(t, e.reg, "saga_step_timeouts_total", "definition", "checkout", "step", "ship"); got != 1 {
		t.Errorf("saga_step_timeouts_total{ship} = %v, want 1", got)
	}

	next := map[string]string{"ship": "charge", "charge": "reserve"}
	for _, s := range []string{"ship", "charge", "reserve"} {
		e.runOnce(t) // nothing is due: no compensation is sent ahead of its turn
		if diff := cmp.Diff(wantSent, sentOps(t, e.db, "order-1")); diff != "" {
			t.Fatalf("commands while compensating %s (-want +got):\n%s", s, diff)
		}
		e.reply(t, "order-1", s, saga.OpCompensate, true, "")
		if next[s] != "" {
			wantSent = append(wantSent, next[s]+"/compensate")
		}
	}

	wantHooks := []string{
		"reserve action STARTED", "reserve action SUCCEEDED",
		"charge action STARTED", "charge action SUCCEEDED",
		"ship action STARTED", "ship action TIMED_OUT",
		"ship compensate STARTED", "ship compensate SUCCEEDED",
		"charge compensate STARTED", "charge compensate SUCCEEDED",
		"reserve compensate STARTED", "reserve compensate SUCCEEDED",
		"failed: ship: timed out",
	}
	if diff := cmp.Diff(wantHooks, hookEvents(t, e.db, "order-1")); diff != "" {
		t.Errorf("hook calls (-want +got):\n%s", diff)
	}
	if got := e.instance(t, "order-1"); got.Status != saga.StatusFailed || got.Reason != "ship: timed out" {
		t.Errorf("instance = %s %q, want FAILED %q", got.Status, got.Reason, "ship: timed out")
	}
	e.runOnce(t)
	if got := metric(t, e.reg, "saga_instances", "status", "COMPENSATING"); got != 0 {
		t.Errorf("saga_instances{COMPENSATING} after failing = %v, want 0", got)
	}
	if got := metric(t, e.reg, "saga_finished_total", "status", "FAILED", "reason", "ship: timed out"); got != 1 {
		t.Errorf("saga_finished_total{FAILED, reason=\"ship: timed out\"} = %v, want 1", got)
	}
	if got := metric(t, e.reg, "saga_step_duration_seconds", "step", "ship", "operation", saga.OpAction, "outcome", "timed_out"); got != 1 {
		t.Errorf("saga_step_duration_seconds{ship, action, timed_out} observations = %v, want 1", got)
	}
}

// testCompensationRetry refuses a compensation twice: it is re-sent, each
// time after a longer wait, until it succeeds.
func testCompensationRetry(t *testing.T, b backend) {
	e := newEnv(t, openDB(t, b.newURL(t)), newClock())
	e.start(t, "checkout", "order-1")
	e.reply(t, "order-1", "reserve", saga.OpAction, true, "")
	e.reply(t, "order-1", "charge", saga.OpAction, false, "card declined")

	for attempt := 1; attempt <= 3; attempt++ {
		inst := e.instance(t, "order-1")
		if inst.Status != saga.StatusCompensating || inst.Attempt != attempt {
			t.Fatalf("before reply %d: instance %s attempt %d, want COMPENSATING attempt %d", attempt, inst.Status, inst.Attempt, attempt)
		}
		if attempt == 3 {
			e.reply(t, "order-1", "reserve", saga.OpCompensate, true, "")
			break
		}
		e.reply(t, "order-1", "reserve", saga.OpCompensate, false, "inventory database down")
		if got := e.instance(t, "order-1"); !cmp.Equal(got, inst) {
			t.Fatalf("a refused compensation changed the instance:\n%s", cmp.Diff(inst, got))
		}
		// Not due yet: the refusal does not make it re-send at once.
		e.clock.Advance(backoffMin / 2)
		e.runOnce(t)
		if n := len(sent(t, e.db, "order-1")); n != 2+attempt {
			t.Fatalf("commands before the backoff elapsed = %d, want %d", n, 2+attempt)
		}
		e.clock.Advance(pastBackoff)
		e.runOnce(t)
	}

	cmds := sent(t, e.db, "order-1")
	var ops []string
	ids := map[string]bool{}
	for _, c := range cmds {
		ops = append(ops, c.String())
		ids[c.ID] = true
	}
	wantOps := []string{"reserve/action", "charge/action", "reserve/compensate", "reserve/compensate", "reserve/compensate"}
	if diff := cmp.Diff(wantOps, ops); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if len(ids) != len(cmds) {
		t.Errorf("%d distinct message ids for %d commands, want one per send", len(ids), len(cmds))
	}
	if got := e.instance(t, "order-1"); got.Status != saga.StatusFailed || got.Reason != "charge: card declined" {
		t.Errorf("instance = %s %q, want FAILED %q", got.Status, got.Reason, "charge: card declined")
	}
	var attempts []int
	e.db.Raw("SELECT attempts FROM saga_steps WHERE saga_id = ? AND op = ?", "order-1", saga.OpCompensate).Scan(&attempts)
	if diff := cmp.Diff([]int{3}, attempts); diff != "" {
		t.Errorf("saga_steps attempts of the compensation (-want +got):\n%s", diff)
	}
	if got := metric(t, e.reg, "saga_compensation_retries_total", "definition", "checkout", "step", "reserve"); got != 2 {
		t.Errorf("saga_compensation_retries_total = %v, want 2", got)
	}
	if got := metric(t, e.reg, "saga_replies_total", "result", "refused"); got != 2 {
		t.Errorf("saga_replies_total{result=refused} = %v, want 2", got)
	}
}

// testStaleReplies sends replies that do not match the operation in flight:
// nothing may change, and nothing may be sent.
func testStaleReplies(t *testing.T, b backend) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, e *env) // leaves order-1 somewhere
		reply      saga.Reply
		wantResult string
	}{
		{
			name:       "duplicate action reply after the saga moved on",
			setup:      func(t *testing.T, e *env) { e.reply(t, "order-1", "reserve", saga.OpAction, true, "") },
			reply:      saga.Reply{SagaID: "order-1", Step: "reserve", Op: saga.OpAction, OK: true},
			wantResult: "stale",
		},
		{
			name: "late OK for an action that timed out and is being compensated",
			setup: func(t *testing.T, e *env) {
				e.reply(t, "order-1", "reserve", saga.OpAction, true, "")
				e.clock.Advance(stepTimeout)
				e.runOnce(t)
			},
			reply:      saga.Reply{SagaID: "order-1", Step: "charge", Op: saga.OpAction, OK: true},
			wantResult: "stale",
		},
		{
			name: "late refusal for an action that timed out",
			setup: func(t *testing.T, e *env) {
				e.clock.Advance(stepTimeout)
				e.runOnce(t)
			},
			reply:      saga.Reply{SagaID: "order-1", Step: "reserve", Op: saga.OpAction, OK: false, Reason: "out of stock"},
			wantResult: "stale",
		},
		{
			name:       "compensation reply while the step's action is in flight",
			setup:      func(t *testing.T, e *env) {},
			reply:      saga.Reply{SagaID: "order-1", Step: "reserve", Op: saga.OpCompensate, OK: true},
			wantResult: "stale",
		},
		{
			name:       "reply for another step than the one in flight",
			setup:      func(t *testing.T, e *env) {},
			reply:      saga.Reply{SagaID: "order-1", Step: "ship", Op: saga.OpAction, OK: true},
			wantResult: "stale",
		},
		{
			name: "duplicate compensation ack after the saga failed",
			setup: func(t *testing.T, e *env) {
				e.reply(t, "order-1", "reserve", saga.OpAction, true, "")
				e.reply(t, "order-1", "charge", saga.OpAction, false, "card declined")
				e.reply(t, "order-1", "reserve", saga.OpCompensate, true, "")
			},
			reply:      saga.Reply{SagaID: "order-1", Step: "reserve", Op: saga.OpCompensate, OK: true},
			wantResult: "stale",
		},
		{
			name: "duplicate last action reply after the saga completed",
			setup: func(t *testing.T, e *env) {
				for _, s := range []string{"reserve", "charge", "ship"} {
					e.reply(t, "order-1", s, saga.OpAction, true, "")
				}
			},
			reply:      saga.Reply{SagaID: "order-1", Step: "ship", Op: saga.OpAction, OK: false, Reason: "too late"},
			wantResult: "stale",
		},
		{
			name:       "unknown saga",
			setup:      func(t *testing.T, e *env) {},
			reply:      saga.Reply{SagaID: "order-2", Step: "reserve", Op: saga.OpAction, OK: true},
			wantResult: "unknown",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, openDB(t, b.newURL(t)), newClock())
			e.start(t, "checkout", "order-1")
			tt.setup(t, e)
			before, sentBefore, hooksBefore := e.instance(t, "order-1"), sentOps(t, e.db, ""), hookEvents(t, e.db, "order-1")

			if err := e.o.HandleReply(t.Context(), tt.reply); err != nil {
				t.Fatalf("HandleReply: %v", err)
			}

			if got := e.instance(t, "order-1"); !cmp.Equal(got, before) {
				t.Errorf("instance changed (-before +after):\n%s", cmp.Diff(before, got))
			}
			if diff := cmp.Diff(sentBefore, sentOps(t, e.db, "")); diff != "" {
				t.Errorf("commands sent (-before +after):\n%s", diff)
			}
			if diff := cmp.Diff(hooksBefore, hookEvents(t, e.db, "order-1")); diff != "" {
				t.Errorf("hooks called (-before +after):\n%s", diff)
			}
			if got := metric(t, e.reg, "saga_replies_total", "result", tt.wantResult); got != 1 {
				t.Errorf("saga_replies_total{result=%s} = %v, want 1", tt.wantResult, got)
			}
		})
	}

	t.Run("invalid replies are errors", func(t *testing.T) {
		e := newEnv(t, openDB(t, b.newURL(t)), newClock())
		for _, r := range []saga.Reply{
			{Step: "reserve", Op: saga.OpAction},
			{SagaID: "order-1", Op: saga.OpAction},
			{SagaID: "order-1", Step: "reserve", Op: "undo"},
		} {
			if err := e.o.HandleReply(t.Context(), r); !errors.Is(err, saga.ErrInvalidCorrelation) {
				t.Errorf("HandleReply(%+v) = %v, want ErrInvalidCorrelation", r, err)
			}
		}
	})
}

// testRecovery leaves sagas in flight in one orchestrator, "crashes" it and
// lets a new one, on a new connection pool, finish them through Run.
func testRecovery(t *testing.T, b backend) {
	url, clock := b.newURL(t), newClock()
	before := newEnv(t, openDB(t, url), clock)
	before.start(t, "checkout", "times-out") // charge's reply never comes
	before.reply(t, "times-out", "reserve", saga.OpAction, true, "")
	before.start(t, "checkout", "compensating") // reserve's compensation is never acknowledged
	before.reply(t, "compensating", "reserve", saga.OpAction, true, "")
	before.reply(t, "compensating", "charge", saga.OpAction, false, "card declined")
	clock.Advance(stepTimeout)             // both are due now
	before.start(t, "checkout", "running") // not due: completes after the restart
	before.db.Close()

	after := newEnv(t, openDB(t, url), clock)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		after.o.Run(ctx)
	}()
	wantSent := map[string][]string{
		"times-out":    {"reserve/action", "charge/action", "charge/compensate"},
		"compensating": {"reserve/action", "charge/action", "reserve/compensate", "reserve/compensate"},
	}
	poll.Until(waitCtx(t), t, "Run to expire and re-send", func() bool {
		return cmp.Equal(wantSent["times-out"], sentOps(t, after.db, "times-out")) &&
			cmp.Equal(wantSent["compensating"], sentOps(t, after.db, "compensating"))
	})
	cancel()
	<-done

	newParticipant(allOK).pump(t, after)
	for id, want := range map[string]saga.Status{"times-out": saga.StatusFailed, "compensating": saga.StatusFailed, "running": saga.StatusCompleted} {
		if got := after.instance(t, id).Status; got != want {
			t.Errorf("saga %s status = %s, want %s", id, got, want)
		}
	}
	wantHooks := []string{
		"reserve action STARTED", "reserve action SUCCEEDED",
		"charge action STARTED", "charge action TIMED_OUT",
		"charge compensate STARTED", "charge compensate SUCCEEDED",
		"reserve compensate STARTED", "reserve compensate SUCCEEDED",
		"failed: charge: timed out",
	}
	if diff := cmp.Diff(wantHooks, hookEvents(t, after.db, "times-out")); diff != "" {
		t.Errorf("hook calls of times-out (-want +got):\n%s", diff)
	}
}

// testRace runs two orchestrators, each with its own connection pool like
// two processes, on one database: every reply is delivered to both at once,
// and both scan for due sagas at once. Every saga must reach its final
// status exactly once, with every hook called once. withoutRowLocks drops
// PostgreSQL's FOR UPDATE, leaving the conditional UPDATEs alone in charge.
func testRace(t *testing.T, b backend, withoutRowLocks bool) {
	url, clock := b.newURL(t), newClock()
	orchestrators := []*env{newEnv(t, openDB(t, url), clock), newEnv(t, openDB(t, url), clock)}
	if withoutRowLocks {
		for _, e := range orchestrators {
			saga.WithoutRowLocks(e.o)
		}
	}
	db := orchestrators[0].db
	const sagas = 16
	id := func(i int) string { return fmt.Sprintf("order-%02d", i) }
	for i := range sagas {
		orchestrators[i%2].start(t, "checkout", id(i))
	}

	// Odd sagas never get ship's reply: they time out and compensate.
	timesOut := map[string]bool{}
	for i := 1; i < sagas; i += 2 {
		timesOut[id(i)] = true
	}
	answered := map[string]bool{}
	deliverAll := func() (delivered int) {
		var replies []saga.Reply
		for _, c := range sent(t, db, "") {
			if answered[c.ID] || (timesOut[c.SagaID] && c.Step == "ship" && c.Op == saga.OpAction) {
				continue
			}
			answered[c.ID] = true
			replies = append(replies, c.correlation().Reply(true, ""))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 4*len(replies))
		for _, r := range replies {
			for _, e := range orchestrators { // the same reply, twice, to each, at once
				for range 2 {
					wg.Go(func() { errs <- e.o.HandleReply(context.Background(), r) })
				}
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("HandleReply: %v", err)
			}
		}
		return len(replies)
	}
	runAll := func() {
		var wg sync.WaitGroup
		for _, e := range orchestrators {
			for range 2 {
				wg.Go(func() {
					if err := e.o.RunOnce(context.Background()); err != nil {
						t.Errorf("RunOnce: %v", err)
					}
				})
			}
		}
		wg.Wait()
	}

	for deliverAll() > 0 { // until every reply but the dropped ones is in
	}
	clock.Advance(stepTimeout)
	runAll()
	// Compensations race their re-sends: the clock jumps past the backoff
	// while replies are delivered.
	for round := 0; ; round++ {
		if round == 50 {
			t.Fatal("sagas still compensating after 50 rounds")
		}
		var wg sync.WaitGroup
		clock.Advance(pastBackoff)
		wg.Go(runAll)
		delivered := deliverAll()
		wg.Wait()
		if delivered == 0 && !inFlight(t, db) {
			break
		}
	}

	for i := range sagas {
		want := []string{
			"reserve action STARTED", "reserve action SUCCEEDED",
			"charge action STARTED", "charge action SUCCEEDED",
			"ship action STARTED", "ship action SUCCEEDED",
			"completed",
		}
		if i%2 == 1 {
			want = append(want[:5],
				"ship action TIMED_OUT",
				"ship compensate STARTED", "ship compensate SUCCEEDED",
				"charge compensate STARTED", "charge compensate SUCCEEDED",
				"reserve compensate STARTED", "reserve compensate SUCCEEDED",
				"failed: ship: timed out")
		}
		if diff := cmp.Diff(want, hookEvents(t, db, id(i))); diff != "" {
			t.Errorf("hook calls of %s (-want +got):\n%s", id(i), diff)
		}
	}
	for status, want := range map[string]float64{"COMPLETED": sagas / 2, "FAILED": sagas / 2} {
		var got float64
		for _, e := range orchestrators {
			got += metric(t, e.reg, "saga_finished_total", "definition", "checkout", "status", status)
		}
		if got != want {
			t.Errorf("saga_finished_total{%s} summed over both orchestrators = %v, want %v", status, got, want)
		}
	}
}

// inFlight reports whether any saga is still RUNNING or COMPENSATING.
func inFlight(t *testing.T, db *database.DB) bool {
	t.Helper()
	var n int64
	if err := db.Raw("SELECT COUNT(*) FROM saga_instances WHERE status IN ('RUNNING', 'COMPENSATING')").Scan(&n).Error; err != nil {
		t.Fatalf("count sagas in flight: %v", err)
	}
	return n > 0
}

func testStart(t *testing.T, b backend) {
	t.Run("inside a rolled-back transaction leaves nothing", func(t *testing.T) {
		e := newEnv(t, openDB(t, b.newURL(t)), newClock())
		errBusiness := errors.New("business rule broken")
		err := e.db.Transaction(func(tx *gorm.DB) error {
			if err := e.o.Start(t.Context(), tx, "checkout", "order-1", []byte(`{}`)); err != nil {
				return err
			}
			return errBusiness
		})
		if !errors.Is(err, errBusiness) {
			t.Fatalf("transaction = %v, want the business error", err)
		}
		for _, table := range []string{"saga_instances", "saga_steps", "test_outbox", "test_hooks"} {
			var n int64
			if err := e.db.Table(table).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%s has %d rows after the rollback, want 0", table, n)
			}
		}
		if _, err := e.o.Instance(t.Context(), "order-1"); !errors.Is(err, saga.ErrNotFound) {
			t.Errorf("Instance after the rollback = %v, want ErrNotFound", err)
		}
	})

	t.Run("records the instance and its first step", func(t *testing.T) {
		e := newEnv(t, openDB(t, b.newURL(t)), newClock())
		e.start(t, "checkout", "order-1")
		now := e.clock.Now()
		want := saga.Instance{
			ID:         "order-1",
			Definition: "checkout",
			Data:       []byte(`{"id":"order-1"}`),
			Status:     saga.StatusRunning,
			Step:       0,
			Attempt:    1,
			DueAt:      now.Add(stepTimeout),
			Version:    1,
			CreatedAt:  now,
			UpdatedAt:  now,
		}
		if diff := cmp.Diff(want, e.instance(t, "order-1")); diff != "" {
			t.Errorf("instance (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"reserve action STARTED"}, hookEvents(t, e.db, "order-1")); diff != "" {
			t.Errorf("hook calls (-want +got):\n%s", diff)
		}
	})

	t.Run("refuses", func(t *testing.T) {
		e := newEnv(t, openDB(t, b.newURL(t)), newClock())
		e.start(t, "checkout", "order-1")
		tests := []struct {
			name, definition, id string
			data                 []byte
			want                 error
		}{
			{"an existing saga id", "checkout", "order-1", []byte(`{}`), saga.ErrSagaExists},
			{"an unknown definition", "refund", "order-2", []byte(`{}`), saga.ErrUnknownDefinition},
			{"data that is not JSON", "checkout", "order-2", []byte(`{`), saga.ErrInvalidData},
			{"no data", "checkout", "order-2", nil, saga.ErrInvalidData},
			{"an empty saga id", "checkout", "", []byte(`{}`), saga.ErrInvalidCorrelation},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// The caller's transaction stays usable after the refusal:
				// the write after it commits.
				err := e.db.Transaction(func(tx *gorm.DB) error {
					if err := e.o.Start(t.Context(), tx, tt.definition, tt.id, tt.data); !errors.Is(err, tt.want) {
						t.Errorf("Start = %v, want %v", err, tt.want)
					}
					return tx.Exec("INSERT INTO test_effects (saga_id, applied, undone) VALUES (?, 0, 0)", tt.name).Error
				})
				if err != nil {
					t.Errorf("transaction after the refused Start: %v", err)
				}
			})
		}
		if got := sentOps(t, e.db, ""); len(got) != 1 {
			t.Errorf("commands sent = %v, want only the first saga's", got)
		}
	})
}

func TestNewOrchestratorRejectsBadDefinitions(t *testing.T) {
	db, err := database.Open(t.Context(), "sqlite:"+t.TempDir()+"/saga.db", discard())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ok := step("reserve", "inventory", true)
	tests := []struct {
		name string
		defs []saga.Definition
		want string
	}{
		{"none", nil, "no definitions"},
		{"unnamed", []saga.Definition{{Steps: []saga.Step{ok}}}, "without a name"},
		{"no steps", []saga.Definition{{Name: "d"}}, "no steps"},
		{"twice", []saga.Definition{{Name: "d", Steps: []saga.Step{ok}}, {Name: "d", Steps: []saga.Step{ok}}}, "given twice"},
		{"unnamed step", []saga.Definition{{Name: "d", Steps: []saga.Step{{Timeout: time.Second, Action: ok.Action}}}}, "name"},
		{"duplicate step", []saga.Definition{{Name: "d", Steps: []saga.Step{ok, ok}}}, "used twice"},
		{"no action", []saga.Definition{{Name: "d", Steps: []saga.Step{{Name: "s", Timeout: time.Second}}}}, "no Action"},
		{"no timeout", []saga.Definition{{Name: "d", Steps: []saga.Step{{Name: "s", Action: ok.Action}}}}, "Timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := saga.NewOrchestrator(db, outboxSender{}, tt.defs, saga.Hooks{}, saga.Options{}, discard(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewOrchestrator = %v, want an error mentioning %q", err, tt.want)
			}
		})
	}

	t.Run("metrics registered twice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if _, err := saga.NewOrchestrator(db, outboxSender{}, definitions(), saga.Hooks{}, saga.Options{}, discard(), reg); err != nil {
			t.Fatalf("first NewOrchestrator: %v", err)
		}
		if _, err := saga.NewOrchestrator(db, outboxSender{}, definitions(), saga.Hooks{}, saga.Options{}, discard(), reg); err == nil {
			t.Error("second NewOrchestrator on the same registry succeeded, want a registration error")
		}
	})
}

// waitCtx bounds a poll.Until of a test at 10s.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
