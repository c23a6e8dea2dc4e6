package saga

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/google/uuid"
	"gorm.io/gorm"
)

// errConflict reports that another transition changed the instance after
// it was read: the transaction rolls back and the event is re-read or
// dropped.
var errConflict = errors.New("saga changed concurrently")

// dueSQL selects the sagas in flight whose due time has come (one ? for now).
const dueSQL = "status IN ('RUNNING', 'COMPENSATING') AND due_at <= ?"

// A move is one transition of an instance, decided from its state and an
// event before anything is written.
type move struct {
	next   Instance    // the state after the transition
	events []stepEvent // step outcomes, in order: saga_steps rows and OnStep
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

// afterTimeout is the move for inst's action passing its deadline.
func (o *Orchestrator) afterTimeout(def *Definition, inst Instance, now time.Time) move {
	i := inst.Step
	m := move{next: inst, events: []stepEvent{{step: i, op: OpAction, outcome: StepTimedOut}}}
	// The action may have taken effect: it is undone first, then the others.
	return o.compensateFrom(def, m, i, def.Steps[i].Name+": timed out", now)
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

// apply writes the transition m of was: the instance, if it is still at
// was's version, then everything perform does. It returns errConflict if
// another transition got there first.
func (o *Orchestrator) apply(ctx context.Context, tx *gorm.DB, def *Definition, was Instance, m move, now time.Time) error {
	m.next.Version, m.next.UpdatedAt = was.Version+1, now
	n := m.next
	res := tx.Exec("UPDATE saga_instances SET status = ?, step = ?, attempt = ?, due_at = ?, reason = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?",
		string(n.Status), n.Step, n.Attempt, nullTime(n.DueAt), n.Reason, n.Version, n.UpdatedAt, n.ID, was.Version)
	if res.Error != nil {
		return fmt.Errorf("update saga: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return errConflict
	}
	return o.perform(ctx, tx, def, m, now)
}

// perform does the rest of a transition whose instance row is written:
// step history and OnStep, the command, the final hook.
func (o *Orchestrator) perform(ctx context.Context, tx *gorm.DB, def *Definition, m move, now time.Time) error {
	inst := m.next
	for _, e := range m.events {
		name := def.Steps[e.step].Name
		if err := recordStep(tx, inst.ID, e, name, now); err != nil {
			return err
		}
		if o.hooks.OnStep != nil {
			if err := o.hooks.OnStep(ctx, tx, inst, name, e.op, e.outcome); err != nil {
				return fmt.Errorf("hook OnStep: %w", err)
			}
		}
	}
	if m.retry {
		err := tx.Exec("UPDATE saga_steps SET attempts = ? WHERE saga_id = ? AND step = ? AND op = ?",
			inst.Attempt, inst.ID, inst.Step, OpCompensate).Error
		if err != nil {
			return fmt.Errorf("update saga step: %w", err)
		}
	}
	if m.send {
		if err := o.send(ctx, tx, def, inst); err != nil {
			return err
		}
	}
	switch {
	case inst.Status == StatusCompleted && o.hooks.OnCompleted != nil:
		if err := o.hooks.OnCompleted(ctx, tx, inst); err != nil {
			return fmt.Errorf("hook OnCompleted: %w", err)
		}
	case inst.Status == StatusFailed && o.hooks.OnFailed != nil:
		if err := o.hooks.OnFailed(ctx, tx, inst, inst.Reason); err != nil {
			return fmt.Errorf("hook OnFailed: %w", err)
		}
	}
	return nil
}

// send builds the command of inst's operation in flight and hands it to the
// Sender.
func (o *Orchestrator) send(ctx context.Context, tx *gorm.DB, def *Definition, inst Instance) error {
	step := def.Steps[inst.Step]
	op, build := OpAction, step.Action
	if inst.Status == StatusCompensating {
		op, build = OpCompensate, step.Compensate
	}
	id := messageID(inst.ID, inst.Step, op, inst.Attempt)
	cmd, err := build(ctx, inst, id)
	if err != nil {
		return fmt.Errorf("build %s command of step %s: %w", op, step.Name, err)
	}
	cmd.ID = id
	if cmd.Key == "" {
		cmd.Key = inst.ID
	}
	headers := make(map[string]string, len(cmd.Headers)+3)
	maps.Copy(headers, cmd.Headers)
	Correlation{SagaID: inst.ID, Step: step.Name, Op: op}.setHeaders(headers)
	cmd.Headers = headers
	if err := o.sender.Send(ctx, tx, cmd); err != nil {
		return fmt.Errorf("send %s command of step %s: %w", op, step.Name, err)
	}
	return nil
}

// messageID is the deterministic id of the attempt-th send of op of step of
// a saga: a name-based UUID, so it fits wherever a message id is a UUID.
// The saga id is quoted so that no two tuples share a name.
func messageID(sagaID string, step int, op string, attempt int) string {
	name := "microshop/saga/" + strconv.Quote(sagaID) + "/" + strconv.Itoa(step) + "/" + op + "/" + strconv.Itoa(attempt)
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)).String()
}

// report updates metrics and logs for a committed transition m of was.
func (o *Orchestrator) report(ctx context.Context, def *Definition, was Instance, m move, now time.Time) {
	n := m.next
	attrs := []any{slog.String("saga_id", n.ID), slog.String("definition", def.Name)}
	for _, e := range m.events {
		if e.outcome == StepTimedOut {
			o.metrics.timeouts.WithLabelValues(def.Name, def.Steps[e.step].Name).Inc()
			o.log.WarnContext(ctx, "saga step timed out, compensating",
				append(attrs, slog.String("step", def.Steps[e.step].Name))...)
		}
	}
	if m.retry {
		step := def.Steps[n.Step].Name
		o.metrics.retries.WithLabelValues(def.Name, step).Inc()
		o.log.WarnContext(ctx, "saga compensation re-sent", append(attrs, slog.String("step", step),
			slog.Int("attempt", n.Attempt), slog.Time("next_due_at", n.DueAt))...)
	}
	if n.Status == was.Status || (n.Status != StatusCompleted && n.Status != StatusFailed) {
		return
	}
	o.metrics.finished.WithLabelValues(def.Name, string(n.Status)).Inc()
	o.metrics.duration.WithLabelValues(def.Name, string(n.Status)).Observe(now.Sub(n.CreatedAt).Seconds())
	if n.Status == StatusCompleted {
		o.log.InfoContext(ctx, "saga completed", attrs...)
	} else {
		o.log.InfoContext(ctx, "saga failed", append(attrs, slog.String("reason", n.Reason))...)
	}
}

// countInFlight refreshes the saga_instances gauge from the database, so
// that every replica reports the same, true count.
func (o *Orchestrator) countInFlight(ctx context.Context) error {
	var rows []struct {
		Status string
		N      int64
	}
	err := o.db.WithContext(ctx).Raw(
		"SELECT status, COUNT(*) AS n FROM saga_instances WHERE status IN ('RUNNING', 'COMPENSATING') GROUP BY status").
		Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("count sagas in flight: %w", err)
	}
	counts := map[string]int64{string(StatusRunning): 0, string(StatusCompensating): 0}
	for _, r := range rows {
		counts[r.Status] = r.N
	}
	for status, n := range counts {
		o.metrics.inFlight.WithLabelValues(status).Set(float64(n))
	}
	return nil
}

// instanceRow is a row of saga_instances.
type instanceRow struct {
	ID         string
	Definition string
	Data       string
	Status     string
	Step       int
	Attempt    int
	DueAt      sql.NullTime
	Reason     string
	Version    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

func (r instanceRow) instance() Instance {
	inst := Instance{
		ID:         r.ID,
		Definition: r.Definition,
		Data:       []byte(r.Data),
		Status:     Status(r.Status),
		Step:       r.Step,
		Attempt:    r.Attempt,
		Reason:     r.Reason,
		Version:    r.Version,
		CreatedAt:  r.CreatedAt.UTC(),
		UpdatedAt:  r.UpdatedAt.UTC(),
	}
	if r.DueAt.Valid {
		inst.DueAt = r.DueAt.Time.UTC()
	}
	return inst
}

// insertInstance inserts inst unless a saga with its id exists, and reports
// whether it did. ON CONFLICT rather than a unique violation keeps the
// caller's PostgreSQL transaction usable.
func insertInstance(tx *gorm.DB, inst Instance) (bool, error) {
	res := tx.Exec("INSERT INTO saga_instances (id, definition, data, status, step, attempt, due_at, reason, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		inst.ID, inst.Definition, string(inst.Data), string(inst.Status), inst.Step, inst.Attempt, nullTime(inst.DueAt),
		inst.Reason, inst.Version, inst.CreatedAt, inst.UpdatedAt)
	if res.Error != nil {
		return false, fmt.Errorf("insert saga: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// selectInstance reads the instance matching where (with its args), if any.
func selectInstance(tx *gorm.DB, where string, args ...any) (Instance, bool, error) {
	var rows []instanceRow
	err := tx.Raw("SELECT id, definition, data, status, step, attempt, due_at, reason, version, created_at, updated_at FROM saga_instances WHERE "+where, args...).
		Scan(&rows).Error
	if err != nil {
		return Instance{}, false, fmt.Errorf("select saga: %w", err)
	}
	if len(rows) == 0 {
		return Instance{}, false, nil
	}
	return rows[0].instance(), true, nil
}

// recordStep writes the step outcome e of saga sagaID to saga_steps: a new
// row when the operation starts, its outcome when it ends.
func recordStep(tx *gorm.DB, sagaID string, e stepEvent, name string, now time.Time) error {
	var err error
	if e.outcome == StepStarted {
		err = tx.Exec("INSERT INTO saga_steps (saga_id, step, name, op, status, attempts, reason, started_at) VALUES (?, ?, ?, ?, ?, 1, '', ?)",
			sagaID, e.step, name, e.op, e.outcome, now).Error
	} else {
		err = tx.Exec("UPDATE saga_steps SET status = ?, reason = ?, finished_at = ? WHERE saga_id = ? AND step = ? AND op = ?",
			e.outcome, e.reason, now, sagaID, e.step, e.op).Error
	}
	if err != nil {
		return fmt.Errorf("record saga step: %w", err)
	}
	return nil
}

// recordRefusal keeps why inst's compensation in flight was refused, for
// operators; the instance itself does not change (Run re-sends when due).
func recordRefusal(tx *gorm.DB, inst Instance, reason string) error {
	err := tx.Exec("UPDATE saga_steps SET reason = ? WHERE saga_id = ? AND step = ? AND op = ?",
		reason, inst.ID, inst.Step, OpCompensate).Error
	if err != nil {
		return fmt.Errorf("record refused compensation: %w", err)
	}
	return nil
}

// nullTime is t for a nullable column: NULL if zero.
func nullTime(t time.Time) sql.NullTime { return sql.NullTime{Time: t, Valid: !t.IsZero()} }

// dbTime is t as both engines store it: UTC, to the microsecond. SQLite
// compares times as text, which orders correctly only in one time zone.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
