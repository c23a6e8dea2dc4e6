package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
)

// Errors of the orchestrator, for errors.Is.
var (
	// ErrUnknownDefinition: no Definition of that name was given to
	// NewOrchestrator.
	ErrUnknownDefinition = errors.New("unknown saga definition")
	// ErrSagaExists: Start was given the id of an existing saga. The
	// caller's transaction is still usable.
	ErrSagaExists = errors.New("saga already exists")
	// ErrInvalidData: Start was given data that is not valid UTF-8 JSON.
	ErrInvalidData = errors.New("saga data is not valid JSON")
	// ErrNotFound: no saga has that id.
	ErrNotFound = errors.New("saga not found")
)

// Sender emits commands. Send is called inside the transaction tx of the
// transition that decided the command and must write through tx (an outbox
// row), so the command exists if and only if the transition commits. It is
// called from several goroutines.
type Sender interface {
	Send(ctx context.Context, tx *gorm.DB, cmd Command) error
}

// Hooks let the service change its own state atomically with the saga's
// (the order's status and its history). The zero value calls nothing.
// Each hook runs inside the transaction of the transition, after the
// instance was updated, and writes through tx. An error rolls the
// transition back; it is retried by the consumer for a reply, by the next
// round of Run for a deadline, or fails Start. A hook therefore runs once
// per committed transition, but may run again in a transaction that rolls
// back. Nil hooks are skipped.
type Hooks struct {
	// OnSteps reports the step outcomes of a transition, in order: an
	// operation STARTED (its first send, Start's included), SUCCEEDED,
	// FAILED or TIMED_OUT. A transition has one or two (one ends, the next
	// starts); all are given in one call, so that the service can record
	// them with one statement. A re-sent compensation has none and is not
	// reported.
	OnSteps func(ctx context.Context, tx *gorm.DB, inst Instance, outcomes []StepOutcome) error
	// OnCompleted runs when the last action succeeded.
	OnCompleted func(ctx context.Context, tx *gorm.DB, inst Instance) error
	// OnFailed runs when every needed compensation has been acknowledged,
	// with the reason the saga failed.
	OnFailed func(ctx context.Context, tx *gorm.DB, inst Instance, reason string) error
}

// Options tune an Orchestrator. The zero value gives the defaults.
type Options struct {
	// Now is the clock; time.Now if nil. Tests move it to reach deadlines.
	Now func() time.Time
	// PollInterval is how often Run looks for due sagas; 1s if zero.
	PollInterval time.Duration
	// RetryBackoffMin is the wait for a compensation's acknowledgement
	// before it is re-sent the first time; 1s if zero. The wait doubles
	// with each attempt, with ±20% jitter.
	RetryBackoffMin time.Duration
	// RetryBackoffMax caps that wait; 1m if zero, RetryBackoffMin if less.
	RetryBackoffMax time.Duration
	// BatchSize is the most due sagas one round of Run handles; 100 if zero.
	BatchSize int
	// TracerProvider creates the spans of the saga's steps (see
	// tracing.go); OTel's global provider if nil.
	TracerProvider trace.TracerProvider
}

// retryJitter spreads the re-sends of many sagas stuck on the same
// participant, so they do not arrive as one burst when it comes back.
const retryJitter = 0.2

func (o Options) withDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.RetryBackoffMin <= 0 {
		o.RetryBackoffMin = time.Second
	}
	if o.RetryBackoffMax <= 0 {
		o.RetryBackoffMax = time.Minute
	}
	o.RetryBackoffMax = max(o.RetryBackoffMax, o.RetryBackoffMin)
	if o.BatchSize <= 0 {
		o.BatchSize = 100
	}
	return o
}

// Orchestrator runs sagas of its definitions on a database migrated with
// MigrateOrchestrator. Create it with NewOrchestrator; the zero value is not
// usable. It is safe for concurrent use, and several Orchestrators, in one
// process or many, may share the database (see the package doc). Its
// methods' ctx bounds their database work and is passed on to the Sender,
// the steps and the hooks.
type Orchestrator struct {
	db      *database.DB
	sender  Sender
	defs    map[string]*Definition
	names   []string // of defs, for the due-saga query
	hooks   Hooks
	opts    Options
	log     *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	// lockWait and lockSkip end the SELECT of an instance on PostgreSQL:
	// replies wait for a concurrent transition, Run skips rows another
	// replica is handling. Empty on SQLite, which has no row locks.
	lockWait, lockSkip string
}

// NewOrchestrator returns an Orchestrator of defs on db (migrated with
// MigrateOrchestrator) that sends commands through sender, calls hooks,
// logs to log and registers its metrics with reg (none if reg is nil). It
// checks the definitions: named, distinct, each with at least one step; steps
// named, distinct, with an Action and a positive Timeout.
func NewOrchestrator(db *database.DB, sender Sender, defs []Definition, hooks Hooks, opts Options, log *slog.Logger, reg prometheus.Registerer) (*Orchestrator, error) {
	o := &Orchestrator{
		db:     db,
		sender: sender,
		defs:   make(map[string]*Definition, len(defs)),
		hooks:  hooks,
		opts:   opts.withDefaults(),
		log:    log,
		tracer: tracerOf(opts.TracerProvider),
	}
	for _, d := range defs {
		if err := checkDefinition(d); err != nil {
			return nil, fmt.Errorf("new orchestrator: %w", err)
		}
		if _, dup := o.defs[d.Name]; dup {
			return nil, fmt.Errorf("new orchestrator: definition %q given twice", d.Name)
		}
		d.Steps = slices.Clone(d.Steps)
		o.defs[d.Name] = &d
		o.names = append(o.names, d.Name)
	}
	if len(o.defs) == 0 {
		return nil, errors.New("new orchestrator: no definitions")
	}
	if db.Dialect() == database.Postgres {
		o.lockWait, o.lockSkip = " FOR UPDATE", " FOR UPDATE SKIP LOCKED"
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new orchestrator: %w", err)
	}
	m.initialize(o.defs)
	o.metrics = m
	return o, nil
}

// Start starts a saga of the named definition with id sagaID and the
// caller's data (JSON), inside the caller's business transaction tx: it
// inserts the instance and the first step and sends the first action through
// the Sender, all in tx. If tx rolls back, nothing of the saga remains. A
// second Start with the same id returns ErrSagaExists and changes nothing,
// leaving tx usable. The saga's trace continues the one in ctx.
func (o *Orchestrator) Start(ctx context.Context, tx *gorm.DB, definition, sagaID string, data []byte) (err error) {
	def, ok := o.defs[definition]
	if !ok {
		return fmt.Errorf("start saga %s: %w: %q", sagaID, ErrUnknownDefinition, definition)
	}
	if err := validID("saga id", sagaID); err != nil {
		return fmt.Errorf("start saga: %w", err)
	}
	if !json.Valid(data) || !utf8.Valid(data) {
		return fmt.Errorf("start saga %s: %w", sagaID, ErrInvalidData)
	}
	now := dbTime(o.opts.Now())
	inst := Instance{
		ID:         sagaID,
		Definition: def.Name,
		Data:       slices.Clone(data),
		Status:     StatusRunning,
		Attempt:    1,
		DueAt:      dbTime(now.Add(def.Steps[0].Timeout)),
		Version:    1,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	ctx, span := o.startSpan(ctx, "start", inst)
	defer func() { endSpan(span, err) }()
	tx = tx.WithContext(ctx)
	inserted, err := insertInstance(tx, inst, traceOf(ctx))
	if err != nil {
		return fmt.Errorf("start saga %s: %w", sagaID, err)
	}
	if !inserted {
		return fmt.Errorf("start saga %s: %w", sagaID, ErrSagaExists)
	}
	m := move{next: inst, events: []stepEvent{{step: 0, op: OpAction, outcome: StepStarted}}, send: true}
	if err := o.perform(ctx, tx, def, m, now); err != nil {
		return fmt.Errorf("start saga %s: %w", sagaID, err)
	}
	o.metrics.started.WithLabelValues(def.Name).Inc()
	return nil
}

// maxReplyTries bounds how often HandleReply re-reads an instance that a
// concurrent transition changed under it. A transition that wins the race
// usually makes the reply stale; only a compensation re-sent by Run leaves
// it in flight, and the next re-send is a backoff away. Without row locks
// (SQLite serialises writers; PostgreSQL locks the row first) conflicts need
// several replicas handling the same reply at once.
const maxReplyTries = 5

// HandleReply applies a participant's reply in its own transaction. A reply
// that does not match the operation in flight — duplicate, late, for an
// unknown or finished saga — changes nothing and returns nil (it is counted
// in saga_replies_total). A compensation refused (OK=false) is logged and
// re-sent later by Run. It returns an error wrapping ErrInvalidCorrelation
// for a reply naming no saga, step or known operation, ErrUnknownDefinition
// for a saga of a definition this orchestrator was not given, and database,
// Sender and hook errors, after which the reply should be delivered again.
func (o *Orchestrator) HandleReply(ctx context.Context, r Reply) error {
	if err := (Correlation{SagaID: r.SagaID, Step: r.Step, Op: r.Op}).validate(); err != nil {
		return fmt.Errorf("handle reply: %w", err)
	}
	for try := 1; ; try++ {
		err := o.handleReply(ctx, r)
		if !errors.Is(err, errConflict) {
			return err
		}
		if try == maxReplyTries {
			return fmt.Errorf("handle reply to %s %s of saga %s: %w", r.Op, r.Step, r.SagaID, err)
		}
	}
}

// replyResult is the label of saga_replies_total for a reply.
type replyResult string

const (
	replyApplied replyResult = "applied" // moved the saga
	replyRefused replyResult = "refused" // a compensation replied OK=false
	replyStale   replyResult = "stale"   // duplicate, late, or for a finished saga
	replyUnknown replyResult = "unknown" // no such saga
)

func (o *Orchestrator) handleReply(ctx context.Context, r Reply) (err error) {
	var (
		result replyResult
		def    *Definition
		was    Instance
		m      move
	)
	ctx, span := o.tracer.Start(ctx, "saga reply "+r.Step, trace.WithAttributes(
		attrSagaID.String(r.SagaID), attrStep.String(r.Step), attrOperation.String(r.Op)))
	defer func() {
		span.SetAttributes(attrReply.String(string(result)))
		if result == replyApplied {
			span.SetAttributes(statusAttrs(m.next)...)
		}
		endSpan(span, err)
	}()
	now := dbTime(o.opts.Now())
	err = o.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inst, found, err := selectInstance(tx, "id = ?"+o.lockWait, r.SagaID)
		if err != nil {
			return err
		}
		if !found {
			result = replyUnknown
			return nil
		}
		def = o.defs[inst.Definition]
		if def == nil {
			return fmt.Errorf("handle reply to saga %s: %w: %q", inst.ID, ErrUnknownDefinition, inst.Definition)
		}
		was = inst
		switch {
		case !inFlight(def, inst, r):
			result = replyStale
			return nil
		case r.Op == OpAction:
			m = o.afterAction(def, inst, r, now)
		case r.OK:
			m = o.afterCompensation(def, inst, now)
		default:
			result = replyRefused
			return recordRefusal(tx, inst, r.Reason)
		}
		result = replyApplied
		return o.apply(ctx, tx, def, inst, m, now)
	})
	if err != nil {
		return err
	}
	o.metrics.replies.WithLabelValues(string(result)).Inc()
	switch result {
	case replyApplied:
		o.report(ctx, def, was, m, now)
	case replyRefused:
		o.log.WarnContext(ctx, "saga compensation refused, will retry",
			slog.String("saga_id", r.SagaID), slog.String("step", r.Step),
			slog.Int("attempt", was.Attempt), slog.String("reason", r.Reason))
	case replyStale, replyUnknown:
		o.log.DebugContext(ctx, "saga reply ignored", slog.String("result", string(result)),
			slog.String("saga_id", r.SagaID), slog.String("step", r.Step), slog.String("op", r.Op))
	}
	return nil
}

// Run acts on due sagas until ctx ends, then returns: it compensates actions
// past their deadline and re-sends compensations not yet acknowledged. It
// looks every PollInterval, at once again when a round was full, and logs
// errors, which the next round retries. Started on a database with sagas in
// flight (after a crash or restart) it resumes them. Every replica may run
// one; call it once per Orchestrator, in its own goroutine.
func (o *Orchestrator) Run(ctx context.Context) {
	o.log.InfoContext(ctx, "saga orchestrator started", slog.String("poll_interval", o.opts.PollInterval.String()))
	defer o.log.InfoContext(ctx, "saga orchestrator stopped")
	ticker := time.NewTicker(o.opts.PollInterval)
	defer ticker.Stop()
	for {
		full, err := o.runOnce(ctx)
		if err != nil && ctx.Err() == nil { // an error from shutting down is no news
			o.log.ErrorContext(ctx, "run due sagas", slog.Any("error", err))
		}
		if full && err == nil && ctx.Err() == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

// RunOnce is one round of Run: it acts on at most BatchSize sagas due now,
// each in its own transaction, and refreshes the saga_instances gauge. It
// returns the errors of the sagas it could not move; they stay due. Tests
// call it after moving the clock; services call Run.
func (o *Orchestrator) RunOnce(ctx context.Context) error {
	_, err := o.runOnce(ctx)
	return err
}

func (o *Orchestrator) runOnce(ctx context.Context) (full bool, err error) {
	now := dbTime(o.opts.Now())
	var ids []string
	err = o.db.WithContext(ctx).Raw(
		"SELECT id FROM saga_instances WHERE "+dueSQL+" AND definition IN ? ORDER BY due_at LIMIT ?",
		now, o.names, o.opts.BatchSize).Scan(&ids).Error
	if err != nil {
		return false, fmt.Errorf("select due sagas: %w", err)
	}
	var errs []error
	for _, id := range ids {
		if err := o.handleDue(ctx, id, now); err != nil {
			errs = append(errs, err)
		}
	}
	if err := o.countInFlight(ctx); err != nil {
		errs = append(errs, err)
	}
	return len(ids) == o.opts.BatchSize, errors.Join(errs...)
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

// handleDue expires the action or re-sends the compensation of saga id, if
// it is still due when claimed. A transition lost to another replica is
// simply skipped: the row is due no more, or is seen again next round.
//
// The span of what it does continues the saga's trace (tracing.go); reading
// the trace context first costs a query, on this path only, which handles
// the rare sagas whose participant did not answer in time.
func (o *Orchestrator) handleDue(ctx context.Context, id string, now time.Time) (err error) {
	var (
		def *Definition
		was Instance
		m   move
	)
	saved, err := selectSavedTrace(o.db.WithContext(ctx), id)
	if err != nil {
		return fmt.Errorf("saga %s: %w", id, err)
	}
	ctx, span := o.tracer.Start(saved.within(ctx), "saga due", trace.WithAttributes(attrSagaID.String(id)))
	defer func() { endSpan(span, err) }()
	err = o.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inst, found, err := selectInstance(tx, "id = ? AND "+dueSQL+o.lockSkip, id, now)
		if err != nil || !found {
			return err
		}
		def, was = o.defs[inst.Definition], inst
		step := def.Steps[inst.Step].Name
		if inst.Status == StatusRunning {
			span.SetName("saga deadline " + step)
			m = o.afterTimeout(def, inst, now)
		} else {
			span.SetName("saga retry " + step)
			m = o.retryCompensation(inst, now)
		}
		span.SetAttributes(attrStep.String(step))
		return o.apply(ctx, tx, def, inst, m, now)
	})
	if def != nil && err == nil {
		span.SetAttributes(statusAttrs(m.next)...)
	}
	switch {
	case errors.Is(err, errConflict):
		return nil
	case err != nil:
		return fmt.Errorf("saga %s: %w", id, err)
	case def != nil:
		o.report(ctx, def, was, m, now)
	}
	return nil
}

// Instance returns the saga with id sagaID, or ErrNotFound.
func (o *Orchestrator) Instance(ctx context.Context, sagaID string) (Instance, error) {
	inst, found, err := selectInstance(o.db.WithContext(ctx), "id = ?", sagaID)
	if err != nil {
		return Instance{}, fmt.Errorf("read saga %s: %w", sagaID, err)
	}
	if !found {
		return Instance{}, fmt.Errorf("read saga %s: %w", sagaID, ErrNotFound)
	}
	return inst, nil
}
