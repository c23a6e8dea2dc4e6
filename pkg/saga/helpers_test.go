package saga_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/clocktest"
	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/saga"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// backend makes a fresh, empty database per call.
type backend struct {
	name   string
	newURL func(t *testing.T) string
}

// backends returns SQLite and PostgreSQL; the Postgres cluster lives as long
// as the calling top-level test.
func backends(t *testing.T) []backend {
	cluster := pgtest.Start(t)
	return []backend{
		{database.SQLite, func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "saga.db") }},
		{database.Postgres, func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) }},
	}
}

// testTables are what the fakes write: the commands the fake Sender
// "publishes" (an outbox written in the transition's transaction, like the
// real one) and the hook calls, numbered per saga. A hook or command written
// twice for a saga by racing transactions collides on the primary key.
var testTables = []string{
	`CREATE TABLE IF NOT EXISTS test_outbox (
		id      TEXT PRIMARY KEY,
		saga_id TEXT NOT NULL,
		seq     INTEGER NOT NULL,
		topic   TEXT NOT NULL,
		msg_key TEXT NOT NULL,
		step    TEXT NOT NULL,
		op      TEXT NOT NULL,
		payload TEXT NOT NULL,
		UNIQUE (saga_id, seq))`,
	`CREATE TABLE IF NOT EXISTS test_hooks (
		saga_id TEXT NOT NULL,
		seq     INTEGER NOT NULL,
		event   TEXT NOT NULL,
		PRIMARY KEY (saga_id, seq))`,
	`CREATE TABLE IF NOT EXISTS test_effects (
		saga_id TEXT PRIMARY KEY,
		applied INTEGER NOT NULL,
		undone  INTEGER NOT NULL)`,
}

// openDB opens url, migrates both schemas and creates the test tables.
func openDB(t *testing.T, url string) *database.DB {
	t.Helper()
	ctx := context.Background()
	db, err := database.Open(ctx, url, discard())
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := saga.MigrateOrchestrator(ctx, db, discard()); err != nil {
		t.Fatalf("MigrateOrchestrator: %v", err)
	}
	if err := saga.MigrateBarrier(ctx, db, discard()); err != nil {
		t.Fatalf("MigrateBarrier: %v", err)
	}
	for _, stmt := range testTables {
		if err := db.Exec(stmt).Error; err != nil {
			t.Fatalf("create test table: %v", err)
		}
	}
	return db
}

// newClock returns a clock that moves only when told to.
func newClock() *clocktest.Clock {
	return clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
}

// outboxSender is a fake Sender that writes each command to test_outbox
// through the transition's transaction, so a rolled-back transition leaves
// no command, as with the real outbox.
type outboxSender struct{}

func (outboxSender) Send(ctx context.Context, tx *gorm.DB, cmd saga.Command) error {
	sagaID := cmd.Headers[saga.HeaderSagaID]
	var n int64
	if err := tx.Raw("SELECT COUNT(*) FROM test_outbox WHERE saga_id = ?", sagaID).Scan(&n).Error; err != nil {
		return err
	}
	return tx.Exec("INSERT INTO test_outbox (id, saga_id, seq, topic, msg_key, step, op, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
		cmd.ID, sagaID, n, cmd.Topic, cmd.Key, cmd.Headers[saga.HeaderStep], cmd.Headers[saga.HeaderOp], string(cmd.Payload)).Error
}

// sentCommand is a row of test_outbox.
type sentCommand struct {
	ID      string
	SagaID  string
	Seq     int
	Topic   string
	MsgKey  string
	Step    string
	Op      string
	Payload string
}

func (c sentCommand) String() string { return c.Step + "/" + c.Op }

// correlation is what the participant reads from the command's headers.
func (c sentCommand) correlation() saga.Correlation {
	return saga.Correlation{SagaID: c.SagaID, Step: c.Step, Op: c.Op}
}

// sent returns the commands sent for sagaID, in order ("" for all sagas,
// by saga).
func sent(t *testing.T, db *database.DB, sagaID string) []sentCommand {
	t.Helper()
	q := db.Table("test_outbox").Order("saga_id, seq")
	if sagaID != "" {
		q = q.Where("saga_id = ?", sagaID)
	}
	var cmds []sentCommand
	if err := q.Scan(&cmds).Error; err != nil {
		t.Fatalf("read test_outbox: %v", err)
	}
	return cmds
}

// sentOps returns the commands sent for sagaID as "step/op".
func sentOps(t *testing.T, db *database.DB, sagaID string) []string {
	t.Helper()
	var ops []string
	for _, c := range sent(t, db, sagaID) {
		ops = append(ops, c.String())
	}
	return ops
}

// recordingHooks are Hooks that append every call to test_hooks inside the
// transition's transaction.
func recordingHooks() saga.Hooks {
	record := func(tx *gorm.DB, sagaID, event string) error {
		var n int64
		if err := tx.Raw("SELECT COUNT(*) FROM test_hooks WHERE saga_id = ?", sagaID).Scan(&n).Error; err != nil {
			return err
		}
		return tx.Exec("INSERT INTO test_hooks (saga_id, seq, event) VALUES (?, ?, ?)", sagaID, n, event).Error
	}
	return saga.Hooks{
		OnSteps: func(_ context.Context, tx *gorm.DB, inst saga.Instance, outcomes []saga.StepOutcome) error {
			for _, o := range outcomes {
				if err := record(tx, inst.ID, o.Step+" "+o.Op+" "+o.Outcome); err != nil {
					return err
				}
			}
			return nil
		},
		OnCompleted: func(_ context.Context, tx *gorm.DB, inst saga.Instance) error {
			return record(tx, inst.ID, "completed")
		},
		OnFailed: func(_ context.Context, tx *gorm.DB, inst saga.Instance, reason string) error {
			return record(tx, inst.ID, "failed: "+reason)
		},
	}
}

// hookEvents returns the hook calls recorded for sagaID, in order.
func hookEvents(t *testing.T, db *database.DB, sagaID string) []string {
	t.Helper()
	var events []string
	if err := db.Raw("SELECT event FROM test_hooks WHERE saga_id = ? ORDER BY seq", sagaID).Scan(&events).Error; err != nil {
		t.Fatalf("read test_hooks: %v", err)
	}
	return events
}

// Step timeouts and retry backoff of the test orchestrators.
const (
	stepTimeout = 30 * time.Second
	backoffMin  = time.Second
	backoffMax  = 4 * time.Second
	// pastBackoff is beyond any retry delay, jitter included.
	pastBackoff = 2 * backoffMax
)

// command builds a step's command the way a service would, from the
// instance's data, with the message id it is given in the payload.
func command(topic, step, op string) func(context.Context, saga.Instance, string) (saga.Command, error) {
	return func(_ context.Context, inst saga.Instance, id string) (saga.Command, error) {
		return saga.Command{
			Topic:   topic,
			Payload: fmt.Appendf(nil, `{"id":%q,"step":%q,"op":%q,"order":%s}`, id, step, op, inst.Data),
			Headers: map[string]string{"traceparent": "00-test"},
		}, nil
	}
}

func step(name, topic string, compensated bool) saga.Step {
	s := saga.Step{Name: name, Timeout: stepTimeout, Action: command(topic, name, saga.OpAction)}
	if compensated {
		s.Compensate = command(topic, name, saga.OpCompensate)
	}
	return s
}

// The definitions of the tests: checkout has a compensation for every step,
// notify has a step (email) with nothing to undo.
func definitions() []saga.Definition {
	return []saga.Definition{
		{Name: "checkout", Steps: []saga.Step{
			step("reserve", "inventory", true),
			step("charge", "payment", true),
			step("ship", "shipping", true),
		}},
		{Name: "notify", Steps: []saga.Step{
			step("reserve", "inventory", true),
			step("email", "mail", false),
			step("charge", "payment", true),
		}},
	}
}

// env is one orchestrator over a database, with a fake clock and its own
// metrics registry.
type env struct {
	db    *database.DB
	clock *clocktest.Clock
	reg   *prometheus.Registry
	// spans records the orchestrator's ended spans; tracer starts the
	// test's own.
	spans  *tracetest.SpanRecorder
	tracer trace.Tracer
	o      *saga.Orchestrator
}

func newEnv(t *testing.T, db *database.DB, clock *clocktest.Clock) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	o, err := saga.NewOrchestrator(db, outboxSender{}, definitions(), recordingHooks(), saga.Options{
		Now:             clock.Now,
		PollInterval:    10 * time.Millisecond,
		RetryBackoffMin: backoffMin,
		RetryBackoffMax: backoffMax,
		TracerProvider:  tp,
	}, discard(), reg)
	if err != nil {
		t.Fatalf("NewOrchestrator: %v", err)
	}
	return &env{db: db, clock: clock, reg: reg, spans: spans, tracer: tp.Tracer("test"), o: o}
}

// start starts a saga in its own business transaction.
func (e *env) start(t *testing.T, definition, id string) {
	t.Helper()
	err := e.db.Transaction(func(tx *gorm.DB) error {
		return e.o.Start(t.Context(), tx, definition, id, []byte(`{"id":"`+id+`"}`))
	})
	if err != nil {
		t.Fatalf("Start(%s): %v", id, err)
	}
}

func (e *env) reply(t *testing.T, sagaID, step, op string, ok bool, reason string) {
	t.Helper()
	r := saga.Reply{SagaID: sagaID, Step: step, Op: op, OK: ok, Reason: reason}
	if err := e.o.HandleReply(t.Context(), r); err != nil {
		t.Fatalf("HandleReply(%+v): %v", r, err)
	}
}

func (e *env) runOnce(t *testing.T) {
	t.Helper()
	if err := e.o.RunOnce(t.Context()); err != nil {
		t.Fatalf("RunOnce: %v", err)
	}
}

func (e *env) instance(t *testing.T, id string) saga.Instance {
	t.Helper()
	inst, err := e.o.Instance(t.Context(), id)
	if err != nil {
		t.Fatalf("Instance(%s): %v", id, err)
	}
	return inst
}

// metric returns the value of the counter or gauge name (the observation
// count of a histogram) summed over its series with the given label values
// (name=value pairs; other labels may take any value), 0 if it has none yet.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// participant is a fake participant: it answers the commands in
// test_outbox through HandleReply, each once.
type participant struct {
	answered map[string]bool // by command id
	// answer decides the reply to c; reply false drops it (lost or slow).
	answer func(c sentCommand) (reply, ok bool, reason string)
}

func newParticipant(answer func(c sentCommand) (reply, ok bool, reason string)) *participant {
	return &participant{answered: map[string]bool{}, answer: answer}
}

// allOK answers every command OK.
func allOK(sentCommand) (reply, ok bool, reason string) { return true, true, "" }

// pump answers every command not answered yet, and the commands those
// answers cause, until none is left.
func (p *participant) pump(t *testing.T, e *env) {
	t.Helper()
	for progress := true; progress; {
		progress = false
		for _, c := range sent(t, e.db, "") {
			if p.answered[c.ID] {
				continue
			}
			p.answered[c.ID] = true
			if reply, ok, reason := p.answer(c); reply {
				e.reply(t, c.SagaID, c.Step, c.Op, ok, reason)
				progress = true
			}
		}
	}
}
