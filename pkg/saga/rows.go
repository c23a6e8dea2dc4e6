package saga

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The orchestrator's rows: saga_instances and saga_steps as GORM reads and
// writes them, on SQLite and PostgreSQL alike. Every function works through
// the transaction it is given.

// errConflict reports that another transition changed the instance after
// it was read: the transaction rolls back and the event is re-read or
// dropped.
var errConflict = errors.New("saga changed concurrently")

// dueSQL selects the sagas in flight whose due time has come (one ? for now).
const dueSQL = "status IN ('RUNNING', 'COMPENSATING') AND due_at <= ?"

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

// insertInstance inserts inst, with the trace context tc it was started in,
// unless a saga with its id exists, and reports whether it did. ON CONFLICT rather than a unique violation keeps the
// caller's PostgreSQL transaction usable.
func insertInstance(tx *gorm.DB, inst Instance, tc savedTrace) (bool, error) {
	res := tx.Exec("INSERT INTO saga_instances (id, definition, data, status, step, attempt, due_at, reason, version, created_at, updated_at, traceparent, tracestate) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
		inst.ID, inst.Definition, string(inst.Data), string(inst.Status), inst.Step, inst.Attempt, nullTime(inst.DueAt),
		inst.Reason, inst.Version, inst.CreatedAt, inst.UpdatedAt, tc.parent, tc.state)
	if res.Error != nil {
		return false, fmt.Errorf("insert saga: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// updateInstance writes next, the instance after a transition, if the row
// is still at version was; errConflict if another transition changed it.
func updateInstance(tx *gorm.DB, next Instance, was int64) error {
	res := tx.Exec("UPDATE saga_instances SET status = ?, step = ?, attempt = ?, due_at = ?, reason = ?, version = ?, updated_at = ? WHERE id = ? AND version = ?",
		string(next.Status), next.Step, next.Attempt, nullTime(next.DueAt), next.Reason, next.Version, next.UpdatedAt, next.ID, was)
	if res.Error != nil {
		return fmt.Errorf("update saga: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return errConflict
	}
	return nil
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

// recordSteps writes the step outcomes of one transition of saga sagaID to
// saga_steps, in one statement: a new row for an operation that starts, the
// outcome of its row for one that ends. events are the outcomes with their
// reasons, outcomes the same with the steps' names. The statement is an
// upsert on the row's key; the rows of a transition have distinct keys (an
// operation ends, another starts), and an operation starts once, so a
// conflicting STARTED row means the history is out of step with the
// instance: it is not applied and the transition fails.
func recordSteps(tx *gorm.DB, sagaID string, events []stepEvent, outcomes []StepOutcome, now time.Time) error {
	var values strings.Builder
	args := make([]any, 0, 7*len(events))
	for i, e := range events {
		if i > 0 {
			values.WriteString(", ")
		}
		values.WriteString("(?, ?, ?, ?, ?, 1, ?, ?, ?)")
		finished := now
		if e.outcome == StepStarted {
			finished = time.Time{}
		}
		// started_at of an ending operation's row is kept as it is: the
		// conflict's UPDATE does not set it.
		args = append(args, sagaID, e.step, outcomes[i].Step, e.op, e.outcome, e.reason, now, nullTime(finished))
	}
	res := tx.Exec("INSERT INTO saga_steps (saga_id, step, name, op, status, attempts, reason, started_at, finished_at) VALUES "+values.String()+
		" ON CONFLICT (saga_id, step, op) DO UPDATE SET status = excluded.status, reason = excluded.reason, finished_at = excluded.finished_at"+
		" WHERE excluded.status <> '"+StepStarted+"'", args...)
	if res.Error != nil {
		return fmt.Errorf("record saga steps: %w", res.Error)
	}
	if res.RowsAffected != int64(len(events)) {
		return fmt.Errorf("record saga steps: %d of %d rows written: an operation started twice", res.RowsAffected, len(events))
	}
	return nil
}

// recordAttempt counts a re-send of inst's compensation in flight.
func recordAttempt(tx *gorm.DB, inst Instance) error {
	err := tx.Exec("UPDATE saga_steps SET attempts = ? WHERE saga_id = ? AND step = ? AND op = ?",
		inst.Attempt, inst.ID, inst.Step, OpCompensate).Error
	if err != nil {
		return fmt.Errorf("update saga step: %w", err)
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
