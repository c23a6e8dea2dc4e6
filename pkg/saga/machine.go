package saga

import (
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
)

// The state machine of a saga instance: from an instance and an event (a
// reply, a deadline, a due re-send) it decides the move — the next state,
// the step outcomes to record and whether to send — without touching the
// database. transition.go writes a move; rows.go holds the SQL.

// A move is one transition of an instance, decided from its state and an
// event before anything is written.
type move struct {
	next   Instance    // the state after the transition
	events []stepEvent // step outcomes, in order: saga_steps rows and OnSteps
	send   bool        // send next's operation in flight
	retry  bool        // the send is a re-send of a compensation
}

// stepEvent is an outcome of a step's operation.
type stepEvent struct {
	step        int
	op, outcome string
	reason      string
}

// afterAction is the move for a reply r to inst's action in flight.
func (o *Orchestrator) afterAction(def *Definition, inst Instance, r Reply, now time.Time) move {
	m := move{next: inst}
	i := inst.Step
	if !r.OK {
		m.events = append(m.events, stepEvent{step: i, op: OpAction, outcome: StepFailed, reason: r.Reason})
		// A refused action had no effect: only the steps before it are undone.
		reason := r.Reason
		if reason == "" {
			reason = "refused"
		}
		return o.compensateFrom(def, m, i-1, def.Steps[i].Name+": "+reason, now)
	}
	m.events = append(m.events, stepEvent{step: i, op: OpAction, outcome: StepSucceeded})
	if i+1 == len(def.Steps) {
		m.next.Status, m.next.DueAt = StatusCompleted, time.Time{}
		return m
	}
	m.next.Step, m.next.Attempt, m.next.DueAt = i+1, 1, dbTime(now.Add(def.Steps[i+1].Timeout))
	m.events = append(m.events, stepEvent{step: i + 1, op: OpAction, outcome: StepStarted})
	m.send = true
	return m
}

// reasonTimedOut ends the reason of a saga failed because an action passed
// its deadline.
const reasonTimedOut = "timed out"

// afterTimeout is the move for inst's action passing its deadline.
func (o *Orchestrator) afterTimeout(def *Definition, inst Instance, now time.Time) move {
	i := inst.Step
	m := move{next: inst, events: []stepEvent{{step: i, op: OpAction, outcome: StepTimedOut}}}
	// The action may have taken effect: it is undone first, then the others.
	return o.compensateFrom(def, m, i, def.Steps[i].Name+": "+reasonTimedOut, now)
}

// afterCompensation is the move for an OK reply to inst's compensation in
// flight.
func (o *Orchestrator) afterCompensation(def *Definition, inst Instance, now time.Time) move {
	m := move{next: inst, events: []stepEvent{{step: inst.Step, op: OpCompensate, outcome: StepSucceeded}}}
	return o.compensateFrom(def, m, inst.Step-1, inst.Reason, now)
}

// compensateFrom completes m by starting the compensation of the last step
// at or before index from that has one, or by failing the saga if none has.
func (o *Orchestrator) compensateFrom(def *Definition, m move, from int, reason string, now time.Time) move {
	m.next.Reason = reason
	for j := from; j >= 0; j-- {
		if def.Steps[j].Compensate == nil {
			continue
		}
		m.next.Status, m.next.Step, m.next.Attempt = StatusCompensating, j, 1
		m.next.DueAt = dbTime(now.Add(o.retryDelay(1)))
		m.events = append(m.events, stepEvent{step: j, op: OpCompensate, outcome: StepStarted})
		m.send = true
		return m
	}
	m.next.Status, m.next.DueAt = StatusFailed, time.Time{}
	return m
}

// retryCompensation is the move for inst's compensation left
// unacknowledged until its due time: send it again, wait longer.
func (o *Orchestrator) retryCompensation(inst Instance, now time.Time) move {
	m := move{next: inst, send: true, retry: true}
	m.next.Attempt++
	m.next.DueAt = dbTime(now.Add(o.retryDelay(m.next.Attempt)))
	return m
}

// retryDelay is how long the attempt-th send of a compensation waits for its
// acknowledgement: RetryBackoffMin doubled per attempt up to
// RetryBackoffMax, with jitter. The backoff library is stateful, so the
// state is rebuilt from the attempt count kept in the database.
func (o *Orchestrator) retryDelay(attempt int) time.Duration {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     o.opts.RetryBackoffMin,
		RandomizationFactor: retryJitter,
		Multiplier:          2,
		MaxInterval:         o.opts.RetryBackoffMax,
	}
	b.Reset()
	// Beyond 64 doublings any interval is capped at the maximum anyway.
	for range min(attempt, 64) - 1 {
		b.NextBackOff()
	}
	return b.NextBackOff()
}

// inFlight reports whether r answers the operation inst is waiting for.
func inFlight(def *Definition, inst Instance, r Reply) bool {
	if inst.Step >= len(def.Steps) || def.Steps[inst.Step].Name != r.Step {
		return false
	}
	switch inst.Status {
	case StatusRunning:
		return r.Op == OpAction
	case StatusCompensating:
		return r.Op == OpCompensate
	default:
		return false
	}
}

// messageID is the deterministic id of the attempt-th send of op of step of
// a saga: a name-based UUID, so it fits wherever a message id is a UUID.
// The saga id is quoted so that no two tuples share a name.
func messageID(sagaID string, step int, op string, attempt int) string {
	name := "microshop/saga/" + strconv.Quote(sagaID) + "/" + strconv.Itoa(step) + "/" + op + "/" + strconv.Itoa(attempt)
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)).String()
}
