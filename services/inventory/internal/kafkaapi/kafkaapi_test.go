package kafkaapi_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/clocktest"
	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/db/dbtest"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/inventory/inventorytest"
	"github.com/microshop/microshop/services/inventory/internal/kafkaapi"
)

const ttl = 15 * time.Minute

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// notifier counts Notify calls; safe for concurrent use.
type notifier struct {
	mu sync.Mutex
	n  int
}

func (n *notifier) Notify() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.n++
}

// publisher keeps what the relay publishes.
type publisher struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func (p *publisher) WriteMessages(_ context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, msgs...)
	return nil
}

// fixture is a Handler on a fresh database, with what the test needs to
// drive and observe it.
type fixture struct {
	db      *database.DB
	handler *kafkaapi.Handler
	service *inventory.Service
	clock   *clocktest.Clock
	relay   *outbox.Relay
	pub     *publisher
	notes   *notifier
	reg     *prometheus.Registry
	logs    *logtest.Buffer
}

// catalog is every fixture's: 5 mugs, 1 pen.
var catalog = []inventory.ProductWithStock{inventorytest.Product("MUG", 5), inventorytest.Product("PEN", 1)}

func newFixture(t *testing.T, engine dbtest.Engine) *fixture {
	t.Helper()
	conn := engine.NewDB(t, catalog...)
	f := &fixture{db: conn, clock: clocktest.New(start), pub: &publisher{}, notes: &notifier{}, reg: prometheus.NewRegistry(), logs: &logtest.Buffer{}}
	log := slog.New(slog.NewJSONHandler(f.logs, nil))
	store := db.NewStore(conn)
	f.service = inventory.NewService(store, f.clock.Now, ttl)
	inTx := func(tx *gorm.DB) *inventory.Service { return f.service.WithStore(store.InTx(tx)) }
	var err error
	if f.handler, err = kafkaapi.NewHandler(conn, inTx, f.notes, f.clock.Now, log, f.reg); err != nil {
		t.Fatal(err)
	}
	if f.relay, err = outbox.NewRelay(conn, f.pub, outbox.RelayOptions{}, slog.New(slog.DiscardHandler), nil); err != nil {
		t.Fatal(err)
	}
	return f
}

// Commands of the tests, for order "o-1".
func reserve(lines ...*checkoutv1.OrderLine) *checkoutv1.Envelope {
	e := newEnvelope()
	e.Payload = &checkoutv1.Envelope_ReserveStock{ReserveStock: &checkoutv1.ReserveStock{OrderId: "o-1", Lines: lines}}
	return e
}

func release() *checkoutv1.Envelope {
	e := newEnvelope()
	e.Payload = &checkoutv1.Envelope_ReleaseStock{ReleaseStock: &checkoutv1.ReleaseStock{OrderId: "o-1"}}
	return e
}

func commit() *checkoutv1.Envelope {
	e := newEnvelope()
	e.Payload = &checkoutv1.Envelope_CommitReservation{CommitReservation: &checkoutv1.CommitReservation{OrderId: "o-1"}}
	return e
}

func line(sku string, quantity int64) *checkoutv1.OrderLine {
	return &checkoutv1.OrderLine{Sku: sku, Quantity: quantity}
}

// newEnvelope returns an envelope of order o-1 without payload, message id
// and saga fields, which message sets.
func newEnvelope() *checkoutv1.Envelope {
	return &checkoutv1.Envelope{CorrelationId: "o-1", OccurredAt: timestamppb.New(start)}
}

// payloadName is the name of e's payload message, e.g. "StockReserved".
func payloadName(e *checkoutv1.Envelope) string {
	return string(checkoutv1.PayloadMessage(e).ProtoReflect().Descriptor().Name())
}

// correlation of each command the order service sends for order o-1.
var (
	reserveCorr = saga.Correlation{SagaID: "o-1", Step: checkoutv1.StepReserveStock, Op: saga.OpAction}
	releaseCorr = saga.Correlation{SagaID: "o-1", Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate}
	commitCorr  = saga.Correlation{SagaID: "o-1", Step: checkoutv1.StepCommitReservation, Op: saga.OpAction}
)

// message returns the Kafka message carrying e with corr, as the outbox
// relay publishes it: a new message id in the envelope and the header.
func message(t *testing.T, e *checkoutv1.Envelope, corr saga.Correlation) kafka.Message {
	t.Helper()
	e.MessageId = uuid.NewString()
	e.SagaId, e.Step = corr.SagaID, corr.Step
	value, err := checkoutv1.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	headers := []kafka.Header{{Key: outbox.HeaderMessageID, Value: []byte(e.MessageId)}}
	for k, v := range corr.Headers() {
		headers = append(headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	return kafka.Message{Topic: checkoutv1.TopicInventoryCommands, Key: []byte(corr.SagaID), Value: value, Headers: headers}
}

// deliver hands the command e with corr to the handler, and fails the test
// if it returns an error.
func (f *fixture) deliver(t *testing.T, e *checkoutv1.Envelope, corr saga.Correlation) {
	t.Helper()
	if err := f.handler.Handle(t.Context(), message(t, e, corr)); err != nil {
		t.Fatalf("Handle(%s %s/%s) = %v, want nil", payloadName(e), corr.Step, corr.Op, err)
	}
}

// reply is what the tests check of a reply.
type reply struct {
	Step, Op string // from the correlation headers
	Payload  string // the payload's message name
	Reason   string // of StockRejected and CommitRejected
	SKU      string // of StockRejected
	// Reservation is StockReserved's reservation id and expiry.
	Reservation string
}

// replies relays the outbox and returns the replies published since the
// last call, checking the envelope fields every reply must have.
func (f *fixture) replies(t *testing.T) []reply {
	t.Helper()
	for {
		n, err := f.relay.RelayOnce(t.Context())
		if err != nil {
			t.Fatalf("relay: %v", err)
		}
		if n == 0 {
			break
		}
	}
	f.pub.mu.Lock()
	msgs := f.pub.msgs
	f.pub.msgs = nil
	f.pub.mu.Unlock()
	var got []reply
	for _, m := range msgs {
		env, err := checkoutv1.Unmarshal(m.Value)
		if err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
		headers := map[string]string{}
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		corr, err := saga.ParseCorrelation(headers)
		if err != nil {
			t.Errorf("reply %s: %v", payloadName(env), err)
		}
		if m.Topic != checkoutv1.TopicReplies || string(m.Key) != "o-1" || env.GetSagaId() != "o-1" || env.GetCorrelationId() != "o-1" ||
			env.GetStep() != corr.Step || env.GetCausationId() == "" || headers[outbox.HeaderMessageID] != env.GetMessageId() {
			t.Errorf("reply %s on %s with key %s, envelope %v, headers %v: want on %s, key, saga and correlation id o-1, the step of the headers, a causation id, the message id in the header",
				payloadName(env), m.Topic, m.Key, env, headers, checkoutv1.TopicReplies)
		}
		r := reply{Step: corr.Step, Op: corr.Op, Payload: payloadName(env)}
		switch p := env.GetPayload().(type) {
		case *checkoutv1.Envelope_StockRejected:
			r.Reason, r.SKU = p.StockRejected.GetReason(), p.StockRejected.GetSku()
		case *checkoutv1.Envelope_CommitRejected:
			r.Reason = p.CommitRejected.GetReason()
		case *checkoutv1.Envelope_StockReserved:
			r.Reservation = p.StockReserved.GetReservationId() + " until " + p.StockReserved.GetExpiresAt().AsTime().Format(time.RFC3339)
		}
		got = append(got, r)
	}
	return got
}

// stock returns the stock of sku.
func (f *fixture) stock(t *testing.T, sku string) inventory.Stock {
	t.Helper()
	p, err := f.service.GetProduct(t.Context(), sku)
	if err != nil {
		t.Fatal(err)
	}
	return p.Stock
}

// reservation returns o-1's reservation ID and expiry as a reply shows them.
func (f *fixture) reservation(t *testing.T) string {
	t.Helper()
	r, err := f.service.Reservation(t.Context(), "o-1")
	if err != nil {
		t.Fatal(err)
	}
	return r.ID + " until " + r.ExpiresAt.Format(time.RFC3339)
}

func (f *fixture) checkStock(t *testing.T, want ...inventory.Stock) {
	t.Helper()
	for _, w := range want {
		if got := f.stock(t, w.SKU); got != w {
			t.Errorf("stock of %s = %+v, want %+v", w.SKU, got, w)
		}
	}
}

func checkReplies(t *testing.T, got, want []reply) {
	t.Helper()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replies mismatch (-want +got):\n%s", diff)
	}
}

// handlerEngines are the engines the handler is tested on: the ICU
// collation changes nothing the handler does.
func handlerEngines(t *testing.T) []dbtest.Engine {
	var engines []dbtest.Engine
	for _, e := range dbtest.Engines(t) {
		if e.Name != "postgres-icu" {
			engines = append(engines, e)
		}
	}
	return engines
}

func TestHandler(t *testing.T) {
	for _, engine := range handlerEngines(t) {
		t.Run(engine.Name, func(t *testing.T) {
			t.Run("reserve, twice", func(t *testing.T) { testReserve(t, engine) })
			t.Run("reserve refused by the business, twice, then released", func(t *testing.T) { testReserveRejected(t, engine) })
			t.Run("release after reserve, twice", func(t *testing.T) { testRelease(t, engine) })
			t.Run("release before reserve: null compensation, then reserve refused", func(t *testing.T) { testNullCompensation(t, engine) })
			t.Run("release of an expired reservation", func(t *testing.T) { testReleaseExpired(t, engine) })
			t.Run("commit, twice", func(t *testing.T) { testCommit(t, engine) })
			t.Run("commit after expiry, twice, then released", func(t *testing.T) { testCommitAfterExpiry(t, engine) })
			t.Run("commit after release", func(t *testing.T) { testCommitAfterRelease(t, engine) })
			t.Run("commit without a reservation, twice", func(t *testing.T) { testCommitWithoutReservation(t, engine) })
			t.Run("commit refused by the barrier", func(t *testing.T) { testCommitRefused(t, engine) })
			t.Run("release after commit undoes the sale, then a late commit", func(t *testing.T) { testReleaseAfterCommit(t, engine) })
			t.Run("concurrent duplicates make one reservation", func(t *testing.T) { testConcurrentDuplicates(t, engine) })
		})
	}
}

func testReserve(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2), line("PEN", 1)), reserveCorr)
	reserved := []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpAction, Payload: "StockReserved", Reservation: f.reservation(t)}}
	checkReplies(t, f.replies(t), reserved)
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 3, Reserved: 2}, inventory.Stock{SKU: "PEN", Available: 0, Reserved: 1})
	if f.notes.n != 1 {
		t.Errorf("relay notified %d times, want 1", f.notes.n)
	}

	f.deliver(t, reserve(line("MUG", 2), line("PEN", 1)), reserveCorr)
	checkReplies(t, f.replies(t), reserved)
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 3, Reserved: 2}, inventory.Stock{SKU: "PEN", Available: 0, Reserved: 1})
}

func testReserveRejected(t *testing.T, engine dbtest.Engine) {
	tests := []struct {
		name       string
		lines      []*checkoutv1.OrderLine
		wantReason string
		wantSKU    string
	}{
		{"insufficient stock", []*checkoutv1.OrderLine{line("MUG", 2), line("PEN", 2)}, "insufficient stock of PEN: 2 requested, 1 available", "PEN"},
		{"unknown product", []*checkoutv1.OrderLine{line("MUG", 2), line("NOPE", 1)}, "unknown product NOPE", "NOPE"},
		{"invalid lines", []*checkoutv1.OrderLine{line("MUG", 0)}, "invalid input: lines[0].quantity must be from 1 to 1000", ""},
		{"no lines", nil, "invalid input: lines must hold at least one line", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, engine)
			f.deliver(t, reserve(tt.lines...), reserveCorr)
			checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpAction, Payload: "StockRejected", Reason: tt.wantReason, SKU: tt.wantSKU}})

			// The refusal committed the barrier row: a redelivery is a
			// duplicate, not a second attempt.
			if _, err := f.service.AdjustStock(t.Context(), "PEN", 10); err != nil {
				t.Fatal(err)
			}
			f.deliver(t, reserve(tt.lines...), reserveCorr)
			checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpAction, Payload: "StockRejected", Reason: "rejected when first delivered"}})

			// The orchestrator compensates nothing after a refusal, but a
			// release finds nothing held.
			f.deliver(t, release(), releaseCorr)
			checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}})
			f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5}, inventory.Stock{SKU: "PEN", Available: 11})
		})
	}
}

func testRelease(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.replies(t)
	released := []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}}
	for range 2 {
		f.deliver(t, release(), releaseCorr)
		checkReplies(t, f.replies(t), released)
		f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	}
	// A reserve redelivered after its compensation is a duplicate: nothing
	// is reserved again, and nothing is said (the saga is past the step).
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	checkReplies(t, f.replies(t), nil)
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
}

func testNullCompensation(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, release(), releaseCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}})

	refused := []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpAction, Payload: "StockRejected", Reason: checkoutv1.ReasonRefused}}
	for range 2 {
		f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
		checkReplies(t, f.replies(t), refused)
		f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	}
	if _, err := f.service.Reservation(t.Context(), "o-1"); !errors.Is(err, inventory.ErrReservationNotFound) {
		t.Errorf("reservation of a refused reserve: error %v, want ErrReservationNotFound", err)
	}
	f.deliver(t, release(), releaseCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}})
}

func testReleaseExpired(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.replies(t)
	f.clock.Advance(ttl)
	if n, err := f.service.ExpireStale(t.Context()); err != nil || n != 1 {
		t.Fatalf("ExpireStale = %d, %v; want 1, nil", n, err)
	}
	f.deliver(t, release(), releaseCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}})
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
}

func testCommit(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.replies(t)
	committed := []reply{{Step: checkoutv1.StepCommitReservation, Op: saga.OpAction, Payload: "ReservationCommitted"}}
	for range 2 {
		f.deliver(t, commit(), commitCorr)
		checkReplies(t, f.replies(t), committed)
		f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 3})
	}
}

// testCommitAfterExpiry: the saga's commit arrives after inventory's
// expirer put the units back on sale. It is rejected, counted once, and the
// compensation the saga then sends finds nothing held.
func testCommitAfterExpiry(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.replies(t)
	f.clock.Advance(ttl + time.Second)
	if n, err := f.service.ExpireStale(t.Context()); err != nil || n != 1 {
		t.Fatalf("ExpireStale = %d, %v; want 1, nil", n, err)
	}
	rejected := []reply{{Step: checkoutv1.StepCommitReservation, Op: saga.OpAction, Payload: "CommitRejected", Reason: "the order's reservation is EXPIRED"}}
	for range 2 { // the first delivery and a redelivery
		f.deliver(t, commit(), commitCorr)
		checkReplies(t, f.replies(t), rejected)
		f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	}
	if got := metricValue(t, f.reg, "inventory_commit_after_expiry_total"); got != 1 {
		t.Errorf("inventory_commit_after_expiry_total = %v, want 1 (the duplicate is not counted)", got)
	}
	if got := strings.Count(f.logs.String(), `"level":"WARN","msg":"commit rejected`); got != 1 {
		t.Errorf("%d warnings logged for the commit after expiry, want 1 (not for the duplicate):\n%s", got, f.logs)
	}
	if strings.Contains(f.logs.String(), `"level":"ERROR"`) {
		t.Errorf("an error was logged, want none: the saga handles a rejected commit:\n%s", f.logs)
	}

	f.deliver(t, release(), releaseCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}})
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
}

// testCommitAfterRelease: the commit step timed out and the saga's
// compensation released the reservation before the late commit arrived. The
// commit is rejected and sells nothing.
func testCommitAfterRelease(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.deliver(t, release(), releaseCorr)
	f.replies(t)
	f.deliver(t, commit(), commitCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepCommitReservation, Op: saga.OpAction, Payload: "CommitRejected", Reason: "the order's reservation is RELEASED"}})
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	if got := metricValue(t, f.reg, "inventory_commit_after_expiry_total"); got != 1 {
		t.Errorf("inventory_commit_after_expiry_total = %v, want 1", got)
	}
}

// testCommitWithoutReservation: a commit of an order that has no
// reservation, which the saga never sends, is rejected rather than left
// unanswered.
func testCommitWithoutReservation(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	rejected := []reply{{Step: checkoutv1.StepCommitReservation, Op: saga.OpAction, Payload: "CommitRejected", Reason: kafkaapi.ReasonNoReservation}}
	for range 2 {
		f.deliver(t, commit(), commitCorr)
		checkReplies(t, f.replies(t), rejected)
		f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	}
	if got := metricValue(t, f.reg, "inventory_commit_after_expiry_total"); got != 0 {
		t.Errorf("inventory_commit_after_expiry_total = %v, want 0: nothing expired", got)
	}
	if !strings.Contains(f.logs.String(), `"level":"ERROR","msg":"commit of an order that has no reservation`) {
		t.Errorf("no error logged for the commit without a reservation:\n%s", f.logs)
	}
}

// testCommitRefused: a commit that arrives after a compensation of its step
// is refused by the barrier. commit-reservation has no compensation, and the
// handler refuses one as a message, so the test writes the barrier's marker
// itself, as such a compensation would.
func testCommitRefused(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.replies(t)
	err := f.db.Transaction(func(tx *gorm.DB) error {
		outcome, err := saga.Barrier(t.Context(), tx, "o-1", checkoutv1.StepCommitReservation, saga.OpCompensate)
		if err == nil && outcome != saga.NullCompensation {
			t.Errorf("compensation before the commit: barrier %v, want NullCompensation", outcome)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	f.deliver(t, commit(), commitCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepCommitReservation, Op: saga.OpAction, Payload: "CommitRejected", Reason: checkoutv1.ReasonRefused}})
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 3, Reserved: 2}) // held until the saga releases it
}

// metricValue returns the value of the counter name registered in reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// testReleaseAfterCommit: the commit landed after its step's deadline, so
// the saga compensates instead of confirming the order. The release undoes
// the sale, and neither a redelivered release nor a redelivered commit
// changes anything again.
func testReleaseAfterCommit(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	f.deliver(t, reserve(line("MUG", 2)), reserveCorr)
	f.deliver(t, commit(), commitCorr)
	f.replies(t)
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 3})

	released := []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}}
	for range 2 { // the first delivery and a redelivery
		f.deliver(t, release(), releaseCorr)
		checkReplies(t, f.replies(t), released)
		f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	}
	r, err := f.service.Reservation(t.Context(), "o-1")
	if err != nil || r.Status != inventory.StatusReleased {
		t.Errorf("reservation after the release = %+v, %v; want it RELEASED", r, err)
	}

	// The commit redelivered: a duplicate, which says what is true now.
	f.deliver(t, commit(), commitCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepCommitReservation, Op: saga.OpAction, Payload: "CommitRejected", Reason: "the order's reservation is RELEASED"}})
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 5})
	if got := metricValue(t, f.reg, "inventory_commit_after_expiry_total"); got != 0 {
		t.Errorf("inventory_commit_after_expiry_total = %v, want 0: the commit was not rejected when first delivered", got)
	}
	if strings.Contains(f.logs.String(), `"level":"ERROR"`) {
		t.Errorf("an error was logged, want none:\n%s", f.logs)
	}
}

func testConcurrentDuplicates(t *testing.T, engine dbtest.Engine) {
	f := newFixture(t, engine)
	const deliveries = 8
	var wg sync.WaitGroup
	errs := make([]error, deliveries)
	for i := range deliveries {
		msg := message(t, reserve(line("MUG", 1)), reserveCorr)
		wg.Go(func() { errs[i] = f.handler.Handle(context.Background(), msg) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("delivery %d: %v", i, err)
		}
	}
	f.checkStock(t, inventory.Stock{SKU: "MUG", Available: 4, Reserved: 1})
	got := f.replies(t)
	if len(got) != deliveries {
		t.Errorf("%d replies, want one per delivery (%d)", len(got), deliveries)
	}
	for _, r := range got {
		if r.Payload != "StockReserved" || r.Reservation != f.reservation(t) {
			t.Errorf("reply %+v, want StockReserved of %s", r, f.reservation(t))
		}
	}
}

// TestHandlerRefusesWhatItCannotHandle checks that messages that can never
// be handled fail permanently, before anything is written.
func TestHandlerRefusesWhatItCannotHandle(t *testing.T) {
	f := newFixture(t, dbtest.SQLite())
	withHeaders := func(msg kafka.Message, headers ...kafka.Header) kafka.Message {
		msg.Headers = append(msg.Headers, headers...)
		return msg
	}
	answer := newEnvelope()
	answer.Payload = &checkoutv1.Envelope_StockReleased{StockReleased: &checkoutv1.StockReleased{OrderId: "o-1"}}
	tests := []struct {
		name string
		msg  kafka.Message
	}{
		{"not an envelope", kafka.Message{Value: []byte("{}"), Headers: message(t, release(), releaseCorr).Headers}},
		{"no correlation headers", kafka.Message{Value: message(t, release(), releaseCorr).Value}},
		{"unknown operation", withHeaders(message(t, release(), releaseCorr), kafka.Header{Key: saga.HeaderOp, Value: []byte("undo")})},
		{"release as an action", message(t, release(), reserveCorr)},
		{"reserve as a compensation", message(t, reserve(line("MUG", 1)), releaseCorr)},
		{"commit on the reserve step", message(t, commit(), saga.Correlation{SagaID: "o-1", Step: checkoutv1.StepReserveStock, Op: saga.OpAction})},
		{"commit compensated", message(t, commit(), saga.Correlation{SagaID: "o-1", Step: checkoutv1.StepCommitReservation, Op: saga.OpCompensate})},
		{"saga id is not the order id", message(t, release(), saga.Correlation{SagaID: "o-2", Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate})},
		{"a reply", message(t, answer, releaseCorr)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := f.handler.Handle(t.Context(), tt.msg)
			// messaging.Permanent's type is unexported: its name is the test.
			if got := fmt.Sprintf("%T", err); got != "*messaging.permanentError" {
				t.Errorf("Handle = %v (%s), want a messaging.Permanent error", err, got)
			}
		})
	}
	checkReplies(t, f.replies(t), nil)
	// Nothing was recorded: the release is not a duplicate.
	f.deliver(t, release(), releaseCorr)
	checkReplies(t, f.replies(t), []reply{{Step: checkoutv1.StepReserveStock, Op: saga.OpCompensate, Payload: "StockReleased"}})
}

// TestHandlerRetriesDatabaseErrors checks that a failing database is a
// transient error, which the consumer retries.
func TestHandlerRetriesDatabaseErrors(t *testing.T) {
	engine := dbtest.SQLite()
	conn := engine.NewDB(t, catalog...)
	store := db.NewStore(conn)
	service := inventory.NewService(store, time.Now, ttl)
	inTx := func(tx *gorm.DB) *inventory.Service { return service.WithStore(store.InTx(tx)) }
	h, err := kafkaapi.NewHandler(conn, inTx, &notifier{}, time.Now, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	err = h.Handle(t.Context(), message(t, reserve(line("MUG", 1)), reserveCorr))
	if err == nil || fmt.Sprintf("%T", err) == "*messaging.permanentError" {
		t.Errorf("Handle on a closed database = %v, want a transient error", err)
	}
}
