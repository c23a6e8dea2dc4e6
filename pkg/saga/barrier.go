package saga

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Outcome is the barrier's verdict on a command. Only Proceed lets the
// participant apply the business effect; every other outcome means "reply
// OK without effect" (for a Duplicate action, see its note). The zero value
// is no outcome, so that code ignoring Barrier's error never proceeds.
type Outcome int

// Outcomes of Barrier.
const (
	// Proceed: first delivery of the operation. Apply the business effect
	// (for a compensation: undo the action, which did run) and reply with its
	// result.
	Proceed Outcome = iota + 1
	// Duplicate: the operation was delivered before and its transaction
	// committed, with its reply. Apply nothing. A compensation is simply
	// acknowledged OK again. For an action the first reply may have been a
	// refusal (out of stock): either reply nothing, since the first reply is
	// already in the outbox, or replay the recorded outcome; the orchestrator
	// ignores replies to a step that is no longer in flight, so an OK is
	// harmless once the first reply has been handled.
	Duplicate
	// NullCompensation: a compensation arrived before its action (the action
	// timed out in the orchestrator and is still in transit, or was lost).
	// There is nothing to undo: apply nothing and reply OK. The barrier has
	// recorded the action as pre-empted, so when it arrives it is Refused.
	NullCompensation
	// Refused: an action arrived after its compensation (anti-hanging).
	// Applying it now would leave an effect nobody will ever undo: apply
	// nothing, reply OK (the orchestrator is compensating and ignores it).
	Refused
)

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Proceed:
		return "proceed"
	case Duplicate:
		return "duplicate"
	case NullCompensation:
		return "null compensation"
	case Refused:
		return "refused"
	default:
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
}

// Barrier guards one delivery of a saga command at a participant. Call it
// FIRST inside the participant's business transaction tx, on a database
// migrated with MigrateBarrier, and apply the business effect in the same
// transaction only if it returns Proceed. If the business transaction rolls
// back, so does the barrier row: the next delivery proceeds again.
//
// A business refusal of an action (out of stock) should commit, with the
// refusal reply in the outbox, rather than roll back: a redelivery is then a
// Duplicate instead of a second attempt that might succeed after the
// orchestrator has moved on.
//
// It works without row locks (SQLite has none): every decision rests on the
// primary key (saga_id, step, op) and INSERT ... ON CONFLICT DO NOTHING,
// whose affected-row count says whether the row is new. Concurrent deliveries
// of the same operation resolve to exactly one Proceed; on PostgreSQL the
// later ones wait for the first transaction to end.
//
// The algorithm (dtm's subtransaction barrier):
//   - action: insert (saga, step, action). New: Proceed. Present: Refused if
//     a compensation inserted it, Duplicate otherwise.
//   - compensate: insert (saga, step, compensate). Present: Duplicate.
//     New: also insert (saga, step, action) as a marker. If the marker is new
//     the action never ran: NullCompensation (and the marker refuses the
//     action later). If the action's row was there: Proceed, undo it.
//
// step is the step's name, op OpAction or OpCompensate; a Correlation read
// from the command's headers supplies all three.
func Barrier(ctx context.Context, tx *gorm.DB, sagaID, step, op string) (Outcome, error) {
	if err := (Correlation{SagaID: sagaID, Step: step, Op: op}).validate(); err != nil {
		return 0, fmt.Errorf("pass barrier: %w", err)
	}
	tx = tx.WithContext(ctx)
	inserted, err := insertBarrier(tx, sagaID, step, op, op)
	if err != nil {
		return 0, err
	}
	if op == OpAction {
		if inserted {
			return Proceed, nil
		}
		var insertedBy []string
		err := tx.Raw("SELECT inserted_by FROM saga_barrier WHERE saga_id = ? AND step = ? AND op = ?",
			sagaID, step, OpAction).Scan(&insertedBy).Error
		if err != nil {
			return 0, fmt.Errorf("pass barrier: select barrier row: %w", err)
		}
		if len(insertedBy) == 1 && insertedBy[0] == OpCompensate {
			return Refused, nil
		}
		return Duplicate, nil
	}
	if !inserted {
		return Duplicate, nil
	}
	actionMissing, err := insertBarrier(tx, sagaID, step, OpAction, OpCompensate)
	if err != nil {
		return 0, err
	}
	if actionMissing {
		return NullCompensation, nil
	}
	return Proceed, nil
}

// insertBarrier inserts the row (sagaID, step, op) unless it exists, and
// reports whether it did.
func insertBarrier(tx *gorm.DB, sagaID, step, op, insertedBy string) (bool, error) {
	res := tx.Exec("INSERT INTO saga_barrier (saga_id, step, op, inserted_by, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (saga_id, step, op) DO NOTHING",
		sagaID, step, op, insertedBy, dbTime(tx.NowFunc()))
	if res.Error != nil {
		return false, fmt.Errorf("pass barrier: insert barrier row: %w", res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Compensated reports whether the compensation of sagaID's step has passed
// the barrier. A participant whose action has an effect outside its
// database (a payment provider) needs it: when an action is redelivered
// after a crash, Barrier says Duplicate whether or not its compensation came
// in between, and a compensated action must not resume its external call.
func Compensated(ctx context.Context, tx *gorm.DB, sagaID, step string) (bool, error) {
	var n int64
	err := tx.WithContext(ctx).Table("saga_barrier").
		Where("saga_id = ? AND step = ? AND op = ?", sagaID, step, OpCompensate).
		Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("look up compensation of %s/%s: %w", sagaID, step, err)
	}
	return n > 0, nil
}
