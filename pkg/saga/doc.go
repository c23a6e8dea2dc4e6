// Package saga runs orchestrated sagas persisted with GORM (SQLite or
// PostgreSQL), and gives their participants a barrier that makes every
// command idempotent.
//
// It is transport-agnostic: the [Orchestrator] emits commands through a
// [Sender] (a service adapts its outbox to it, so a command is written in the
// same transaction as the state change that decided it), and the service's
// consumer feeds the participants' answers back with
// [Orchestrator.HandleReply].
//
// # Orchestrator
//
// A [Definition] is a list of steps. Each step has an action, an optional
// compensation and a deadline for the action's reply. An instance moves like
// this:
//
//   - Forward: [Orchestrator.Start] sends the first action. An OK reply to the
//     action in flight sends the next one; after the last, the saga is
//     COMPLETED (Hooks.OnCompleted).
//   - Refusal: an action replied with OK=false (out of stock, card declined)
//     had no effect, so only the steps before it are compensated.
//   - Timeout: an action whose deadline passes without a reply is ambiguous
//     (it may have taken effect): it is compensated too, first, and then the
//     steps before it. Its compensation settles the ambiguity (payment asks the
//     PSP and refunds if the charge went through).
//   - Compensation runs in reverse order, one step at a time: the previous
//     step's compensation is sent only once this one is acknowledged OK. An
//     unacknowledged compensation (no reply, or OK=false) is re-sent with
//     exponential backoff until it succeeds: compensations must eventually
//     succeed. Steps without a compensation are skipped. Once all are
//     acknowledged the saga is FAILED (Hooks.OnFailed, with the reason).
//
// Replies are correlated by saga id, step name and operation, which travel in
// every command's headers ([Correlation]). A reply that does not match the
// operation in flight (a duplicate, an action's OK arriving after its deadline
// expired, an unknown saga) changes nothing. A reply that arrives after the
// deadline but before [Orchestrator.Run] noticed it still counts.
//
// # Several replicas
//
// Any number of orchestrators (processes) may share the database. Every
// transition is one transaction: an UPDATE conditional on the instance's
// version, then the step history, the Sender call and the hooks. Of two
// orchestrators handling the same event, one updates and the other changes
// no row and rolls back, so no saga is advanced twice and every hook runs
// once per transition. On PostgreSQL, replies lock the instance row (FOR
// UPDATE) so that concurrent handlers queue instead of retrying, and Run
// claims due rows with FOR UPDATE SKIP LOCKED so replicas split the work;
// SQLite has no row locks and serialises writers instead. Neither lock is
// needed for correctness.
//
// Recovery after a crash needs nothing special: all state is in the
// database, and Run acts on whatever is due, whichever process wrote it.
//
// # Message ids
//
// A command's ID is deterministic: a UUID (version 5) of the saga id, step
// index, operation and attempt. A transaction that is retried after a
// rollback sends the same id again; a compensation that is re-sent gets a
// new one (participants deduplicate by saga, step and operation with the
// barrier, not by message id). The orchestrator picks the id before it
// builds the command and hands it to the step's Action or Compensate, so a
// payload that carries its own message id is encoded once.
//
// # Barrier
//
// [Barrier] is the participants' half, after dtm's subtransaction barrier:
// called first inside the business transaction, it inserts (saga, step, op)
// into saga_barrier and says whether the business effect may be applied. It
// gives idempotency (a duplicate is a no-op), null compensation (a
// compensation arriving before its action records itself and succeeds
// without effect) and anti-hanging (an action arriving after its
// compensation is refused).
//
// [Participant] wraps it for a participant's handler: [ParseDelivery] reads
// a command's correlation headers and checks them against its payload, and
// [Participant.Pass] runs the barrier, the business effect and the reply
// (written to the outbox) in one transaction, then wakes the outbox relay.
// [Participant.Answer] replies on its own, for an effect that cannot join
// the transaction (a call to a payment provider).
//
// # Schema
//
// [MigrateOrchestrator] creates saga_instances and saga_steps, [MigrateBarrier]
// creates saga_barrier, each versioned in its own goose table so that they
// live beside the service's own schema.
package saga
