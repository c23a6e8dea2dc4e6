package kafkaapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/kafkaapi"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
	"github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/psp/simulator"
)

// fixture is a Handler on a real database, charging through a real PSP
// simulator served over HTTP.
type fixture struct {
	db       *database.DB
	sim      *simulator.Simulator
	handler  *kafkaapi.Handler
	notified atomic.Int64
}

func (f *fixture) Notify() { f.notified.Add(1) }

func newFixture(t *testing.T, databaseURL string) *fixture {
	t.Helper()
	f := &fixture{db: paymenttest.Open(t, databaseURL), sim: simulator.New(simulator.Settings{Hang: time.Hour})}
	log := slog.New(slog.DiscardHandler)
	if err := outbox.Migrate(t.Context(), f.db, log); err != nil {
		t.Fatal(err)
	}
	if err := saga.MigrateBarrier(t.Context(), f.db, log); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f.sim.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(f.sim.Close) // before srv.Close: releases a hanging charge
	// A short PSP timeout: the hanging card's charge turns ambiguous quickly.
	client := psp.New(srv.URL, 500*time.Millisecond, nil)
	t.Cleanup(client.Close)
	svc := payment.NewService(db.NewStore(f.db), client, time.Now)
	f.handler = kafkaapi.NewHandler(f.db, svc, f, time.Now, log)
	return f
}

const amount = 1999

// chargeCommand returns the ChargePayment the order service sends for order.
func chargeCommand(order, card string) kafka.Message {
	return command(order, saga.OpAction, &checkoutv1.Envelope_ChargePayment{ChargePayment: &checkoutv1.ChargePayment{
		OrderId: order, Amount: &checkoutv1.Money{MinorUnits: amount, Currency: "EUR"},
		CardNumber: card, IdempotencyKey: checkoutv1.ChargeKey(order),
	}})
}

// refundCommand returns the RefundPayment the order service sends for order.
func refundCommand(order string) kafka.Message {
	return command(order, saga.OpCompensate, &checkoutv1.Envelope_RefundPayment{RefundPayment: &checkoutv1.RefundPayment{
		OrderId: order, Amount: &checkoutv1.Money{MinorUnits: amount, Currency: "EUR"}, IdempotencyKey: checkoutv1.RefundKey(order),
	}})
}

func command(order, op string, payload any) kafka.Message {
	env := &checkoutv1.Envelope{
		MessageId: uuid.NewString(), SagaId: order, Step: checkoutv1.StepChargePayment,
		CorrelationId: order, OccurredAt: timestamppb.Now(),
	}
	switch p := payload.(type) {
	case *checkoutv1.Envelope_ChargePayment:
		env.Payload = p
	case *checkoutv1.Envelope_RefundPayment:
		env.Payload = p
	}
	value, err := checkoutv1.Marshal(env)
	if err != nil {
		panic(err)
	}
	corr := saga.Correlation{SagaID: order, Step: checkoutv1.StepChargePayment, Op: op}
	msg := kafka.Message{Topic: checkoutv1.TopicPaymentCommands, Key: []byte(order), Value: value,
		Headers: []kafka.Header{{Key: outbox.HeaderMessageID, Value: []byte(env.MessageId)}}}
	for k, v := range corr.Headers() {
		msg.Headers = append(msg.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	return msg
}

// deliver hands msg to the handler and fails the test on an error.
func (f *fixture) deliver(t *testing.T, msg kafka.Message) {
	t.Helper()
	if err := f.handler.Handle(t.Context(), msg); err != nil {
		t.Fatalf("Handle = %v, want nil", err)
	}
}

// reply is a reply as written to the outbox, without its ids and time.
type reply struct {
	Headers map[string]string
	Payload proto.Message
}

// replies returns the replies in the outbox, oldest first, and checks
// their envelopes answer the commands.
func (f *fixture) replies(t *testing.T) []reply {
	t.Helper()
	var rows []struct {
		Topic, Key, Headers string
		Payload             []byte
	}
	if err := f.db.Raw("SELECT topic, key, headers, payload FROM outbox ORDER BY seq").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var got []reply
	for _, r := range rows {
		env, err := checkoutv1.Unmarshal(r.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if r.Topic != checkoutv1.TopicReplies || r.Key != checkoutv1.OrderID(env) || env.GetSagaId() != r.Key ||
			env.GetStep() != checkoutv1.StepChargePayment || env.GetCausationId() == "" {
			t.Errorf("outbox row %s/%s holds %v: want a reply on %s keyed and correlated by order id", r.Topic, r.Key, env, checkoutv1.TopicReplies)
		}
		rep := reply{Payload: checkoutv1.PayloadMessage(env), Headers: map[string]string{}}
		if err := json.Unmarshal([]byte(r.Headers), &rep.Headers); err != nil {
			t.Fatal(err)
		}
		got = append(got, rep)
	}
	return got
}

func headersOf(order, op string) map[string]string {
	return saga.Correlation{SagaID: order, Step: checkoutv1.StepChargePayment, Op: op}.Headers()
}

func checkReplies(t *testing.T, f *fixture, want []reply) {
	t.Helper()
	if diff := cmp.Diff(want, f.replies(t), protocmp.Transform()); diff != "" {
		t.Errorf("replies mismatch (-want +got):\n%s", diff)
	}
}

// checkPSP fails unless the simulator holds charges charges and refunds refunds.
func checkPSP(t *testing.T, f *fixture, charges, refunds int) {
	t.Helper()
	if got := len(f.sim.Charges()); got != charges {
		t.Errorf("PSP holds %d charges, want %d", got, charges)
	}
	if got := len(f.sim.Refunds()); got != refunds {
		t.Errorf("PSP holds %d refunds, want %d", got, refunds)
	}
}

func paymentOf(t *testing.T, f *fixture, order string) payment.Payment {
	t.Helper()
	p, err := db.NewStore(f.db).PaymentByKey(t.Context(), checkoutv1.ChargeKey(order))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHandler(t *testing.T) {
	for engine, newDatabase := range paymenttest.Databases(t) {
		t.Run(engine, func(t *testing.T) {
			t.Run("charge", func(t *testing.T) { testCharge(t, newDatabase(t)) })
			t.Run("hanging card settled by the refund", func(t *testing.T) { testHangingCard(t, newFixture(t, newDatabase(t))) })
			t.Run("refund before charge", func(t *testing.T) { testRefundBeforeCharge(t, newFixture(t, newDatabase(t))) })
			t.Run("charge redelivered after its compensation", func(t *testing.T) {
				testChargeRedeliveredAfterCompensation(t, newFixture(t, newDatabase(t)))
			})
			t.Run("charge redelivered after a crash", func(t *testing.T) { testChargeAfterCrash(t, newFixture(t, newDatabase(t))) })
			t.Run("invalid messages", func(t *testing.T) { testInvalid(t, newFixture(t, newDatabase(t))) })
		})
	}
}

// testCharge delivers each ChargePayment twice: one PSP charge, and the
// same reply each time.
func testCharge(t *testing.T, databaseURL string) {
	f := newFixture(t, databaseURL)
	tests := []struct {
		order, card string
		want        func(p payment.Payment) proto.Message
	}{
		{"order-ok", simulator.CardSucceeds, func(p payment.Payment) proto.Message {
			return &checkoutv1.PaymentCaptured{OrderId: "order-ok", PaymentId: p.ID, PspReference: p.PSPReference}
		}},
		{"order-declined", simulator.CardDeclined, func(payment.Payment) proto.Message {
			return &checkoutv1.PaymentFailed{OrderId: "order-declined", Reason: "card_declined"}
		}},
	}
	var want []reply
	for _, tt := range tests {
		msg := chargeCommand(tt.order, tt.card)
		f.deliver(t, msg)
		f.deliver(t, msg)
		r := reply{Headers: headersOf(tt.order, saga.OpAction), Payload: tt.want(paymentOf(t, f, tt.order))}
		want = append(want, r, r)
	}
	checkReplies(t, f, want)
	checkPSP(t, f, 2, 0)
	if p := paymentOf(t, f, "order-ok"); p.Status != payment.StatusCaptured || p.PSPReference == "" {
		t.Errorf("payment = %+v, want CAPTURED with a PSP reference", p)
	}
	if got := f.notified.Load(); got != 4 {
		t.Errorf("relay notified %d times, want 4 (once per reply)", got)
	}
}

// testHangingCard: an ambiguous charge gets no reply; the compensation
// finds it captured and refunds it, once however often it is delivered.
func testHangingCard(t *testing.T, f *fixture) {
	const order = "order-hangs"
	f.deliver(t, chargeCommand(order, simulator.CardHangs))
	checkReplies(t, f, nil)
	if p := paymentOf(t, f, order); p.Status != payment.StatusPending {
		t.Fatalf("payment after a timed-out charge is %s, want PENDING", p.Status)
	}

	refund := refundCommand(order)
	f.deliver(t, refund)
	f.deliver(t, refund)
	p := paymentOf(t, f, order)
	if p.Status != payment.StatusCaptured || len(p.Refunds) != 1 || p.Refunds[0].Amount.Minor != amount ||
		p.Refunds[0].Status != payment.RefundSucceeded {
		t.Fatalf("payment = %+v, want CAPTURED and refunded in full", p)
	}
	r := reply{Headers: headersOf(order, saga.OpCompensate),
		Payload: &checkoutv1.PaymentRefunded{OrderId: order, RefundId: p.Refunds[0].ID}}
	checkReplies(t, f, []reply{r, r})
	checkPSP(t, f, 1, 1)
}

// testRefundBeforeCharge: a null compensation, then the late charge is
// refused and never reaches the PSP.
func testRefundBeforeCharge(t *testing.T, f *fixture) {
	const order = "order-late"
	f.deliver(t, refundCommand(order))
	f.deliver(t, chargeCommand(order, simulator.CardSucceeds))
	f.deliver(t, chargeCommand(order, simulator.CardSucceeds))
	refused := reply{Headers: headersOf(order, saga.OpAction),
		Payload: &checkoutv1.PaymentFailed{OrderId: order, Reason: checkoutv1.ReasonRefused}}
	checkReplies(t, f, []reply{
		{Headers: headersOf(order, saga.OpCompensate), Payload: &checkoutv1.PaymentRefunded{OrderId: order}},
		refused, refused,
	})
	checkPSP(t, f, 0, 0)
}

// passBarrier commits the barrier row of the charge of order, as a first
// delivery that crashed before reaching the PSP would have.
func passBarrier(t *testing.T, f *fixture, order string) {
	t.Helper()
	err := f.db.Transaction(func(tx *gorm.DB) error {
		o, err := saga.Barrier(t.Context(), tx, order, checkoutv1.StepChargePayment, saga.OpAction)
		if err == nil && o != saga.Proceed {
			err = errors.New("barrier says " + o.String())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// testChargeRedeliveredAfterCompensation: a charge that passed the barrier
// and crashed before the PSP, then compensated (nothing to refund), must not
// charge when it is delivered again.
func testChargeRedeliveredAfterCompensation(t *testing.T, f *fixture) {
	const order = "order-crashed"
	passBarrier(t, f, order)
	f.deliver(t, refundCommand(order))
	f.deliver(t, chargeCommand(order, simulator.CardSucceeds))
	checkReplies(t, f, []reply{
		{Headers: headersOf(order, saga.OpCompensate), Payload: &checkoutv1.PaymentRefunded{OrderId: order}},
		{Headers: headersOf(order, saga.OpAction), Payload: &checkoutv1.PaymentFailed{OrderId: order, Reason: checkoutv1.ReasonRefused}},
	})
	checkPSP(t, f, 0, 0)
}

// testChargeAfterCrash: a charge that passed the barrier and crashed before
// the PSP is charged when delivered again (Duplicate), and answered.
func testChargeAfterCrash(t *testing.T, f *fixture) {
	const order = "order-resumed"
	passBarrier(t, f, order)
	f.deliver(t, chargeCommand(order, simulator.CardSucceeds))
	p := paymentOf(t, f, order)
	checkReplies(t, f, []reply{{Headers: headersOf(order, saga.OpAction),
		Payload: &checkoutv1.PaymentCaptured{OrderId: order, PaymentId: p.ID, PspReference: p.PSPReference}}})
	checkPSP(t, f, 1, 0)
}

// testInvalid: messages that can never be handled are dead-lettered
// (a permanent error) without any effect.
func testInvalid(t *testing.T, f *fixture) {
	withHeader := func(msg kafka.Message, key, value string) kafka.Message {
		msg.Headers = append(msg.Headers, kafka.Header{Key: key, Value: []byte(value)})
		return msg
	}
	noHeaders := chargeCommand("o1", simulator.CardSucceeds)
	noHeaders.Headers = nil
	tests := map[string]kafka.Message{
		"not an envelope":       {Value: []byte("not protobuf")},
		"no correlation":        noHeaders,
		"charge as compensate":  withHeader(chargeCommand("o2", simulator.CardSucceeds), saga.HeaderOp, saga.OpCompensate),
		"refund as action":      withHeader(refundCommand("o3"), saga.HeaderOp, saga.OpAction),
		"saga id not the order": withHeader(chargeCommand("o4", simulator.CardSucceeds), saga.HeaderSagaID, "other"),
	}
	for name, msg := range tests {
		t.Run(name, func(t *testing.T) {
			err := f.handler.Handle(context.Background(), msg)
			if !isPermanent(err) {
				t.Errorf("Handle = %v, want a permanent error", err)
			}
		})
	}
	checkReplies(t, f, nil)
	checkPSP(t, f, 0, 0)
}

// isPermanent reports whether err was marked by messaging.Permanent, by
// its type's name: the package exports no test of its own.
func isPermanent(err error) bool {
	return fmt.Sprintf("%T", err) == fmt.Sprintf("%T", messaging.Permanent(errors.New("")))
}
