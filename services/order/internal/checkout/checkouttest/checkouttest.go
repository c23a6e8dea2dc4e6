// Package checkouttest fakes the checkout saga's participants, inventory and
// payment, for tests of the order service against a real Kafka-protocol
// broker: a Participants consumes the command topics and replies on the
// replies topic the way the real services would, as its Reply function says.
package checkouttest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// Reply decides the answers to a command: each envelope returned (with its
// payload set; the rest is filled in) is sent as a reply, none for silence,
// two for a duplicate delivery.
type Reply func(cmd *checkoutv1.Envelope) []*checkoutv1.Envelope

// Participants is a running fake of inventory and payment. Its methods are
// safe for concurrent use.
type Participants struct {
	reply  Reply
	writer *messaging.Writer
	mu     sync.Mutex
	seen   []received
}

// received is a command the fakes consumed, with the correlation its
// headers carried.
type received struct {
	cmd  *checkoutv1.Envelope
	corr saga.Correlation
}

// Start runs fake participants on the broker at brokers until the test
// ends, answering with reply.
func Start(t testing.TB, brokers string, reply Reply) *Participants {
	t.Helper()
	cfg := messaging.Config{Brokers: []string{brokers}, ClientID: "fake-participants"}
	p := &Participants{reply: reply, writer: messaging.NewWriter(cfg)}
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          cfg,
		GroupID:         "fake-participants",
		Topics:          []string{checkoutv1.TopicInventoryCommands, checkoutv1.TopicPaymentCommands},
		DeadLetterTopic: "fake-participants.dlq",
		MaxWait:         50 * time.Millisecond,
		MinBackoff:      50 * time.Millisecond,
	}, p.handle, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fake participants: %v", err)
		}
		consumer.Close()
		p.writer.Close()
	})
	return p
}

func (p *Participants) handle(ctx context.Context, msg kafka.Message) error {
	cmd, err := checkoutv1.Unmarshal(msg.Value)
	if err != nil {
		return messaging.Permanent(err)
	}
	corr, err := saga.ParseCorrelation(messaging.Headers(msg))
	if err != nil {
		return messaging.Permanent(err)
	}
	r := received{cmd: cmd, corr: corr}
	p.mu.Lock()
	p.seen = append(p.seen, r)
	p.mu.Unlock()
	return p.send(ctx, r, p.reply(cmd))
}

// send writes replies to the command r to the replies topic, each completed
// with a new message id and r's correlation.
func (p *Participants) send(ctx context.Context, r received, replies []*checkoutv1.Envelope) error {
	var out []kafka.Message
	for _, reply := range replies {
		value, err := checkoutv1.ReplyEncoder(reply, r.corr.SagaID, r.corr.Step, r.cmd.GetMessageId(), time.Now())(uuid.NewString())
		if err != nil {
			return messaging.Permanent(err)
		}
		msg := kafka.Message{Topic: checkoutv1.TopicReplies, Key: []byte(r.corr.SagaID), Value: value,
			Headers: []kafka.Header{{Key: outbox.HeaderMessageID, Value: []byte(reply.MessageId)}}}
		for k, v := range r.corr.Headers() {
			msg.Headers = append(msg.Headers, kafka.Header{Key: k, Value: []byte(v)})
		}
		out = append(out, msg)
	}
	if len(out) == 0 {
		return nil
	}
	return p.writer.WriteMessages(ctx, out...)
}

// Answer sends replies, late, to the last command named name (e.g.
// "CommitReservation") the fakes received for order orderID, as if their
// Reply had returned them then. It fails the test if there is no such
// command or the replies cannot be sent.
func (p *Participants) Answer(t testing.TB, orderID, name string, replies ...*checkoutv1.Envelope) {
	t.Helper()
	p.mu.Lock()
	var cmd *received
	for _, r := range slices.Backward(p.seen) {
		if checkoutv1.OrderID(r.cmd) == orderID && Name(r.cmd) == name {
			cmd = &r
			break
		}
	}
	p.mu.Unlock()
	if cmd == nil {
		t.Fatalf("no %s received for order %s to answer", name, orderID)
	}
	if err := p.send(t.Context(), *cmd, replies); err != nil {
		t.Fatalf("answer %s of order %s: %v", name, orderID, err)
	}
}

// Commands returns the names of the commands received for order orderID, in
// the order they arrived, e.g. ["ReserveStock", "ChargePayment"].
func (p *Participants) Commands(orderID string) []string {
	var names []string
	for _, cmd := range p.Received(orderID) {
		names = append(names, Name(cmd))
	}
	return names
}

// Received returns the commands received for order orderID.
func (p *Participants) Received(orderID string) []*checkoutv1.Envelope {
	p.mu.Lock()
	defer p.mu.Unlock()
	var cmds []*checkoutv1.Envelope
	for _, r := range p.seen {
		if checkoutv1.OrderID(r.cmd) == orderID {
			cmds = append(cmds, r.cmd)
		}
	}
	return cmds
}

// Name is the name of env's payload message, e.g. "ReserveStock".
func Name(env *checkoutv1.Envelope) string { return checkoutv1.PayloadName(env) }

// Options say how the fakes answer the actions; compensations always
// succeed.
type Options struct {
	// RejectStock makes inventory answer StockRejected.
	RejectStock string
	// RejectCommit makes inventory answer CommitReservation with
	// CommitRejected with this reason, as it does when the reservation
	// expired before the commit arrived.
	RejectCommit string
	// SilentCommit makes inventory never answer CommitReservation
	// (Participants.Answer can, later).
	SilentCommit bool
	// DeclinePayment makes payment answer PaymentFailed with this reason.
	DeclinePayment string
	// SilentPayment makes payment never answer ChargePayment.
	SilentPayment bool
	// Times is how often every reply is sent; 1 if zero.
	Times int
}

// Behave returns the Reply of well-behaved participants tuned by o.
func Behave(o Options) Reply {
	return func(cmd *checkoutv1.Envelope) []*checkoutv1.Envelope {
		id := checkoutv1.OrderID(cmd)
		var r *checkoutv1.Envelope
		switch cmd.GetPayload().(type) {
		case *checkoutv1.Envelope_ReserveStock:
			r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReserved{StockReserved: &checkoutv1.StockReserved{OrderId: id, ReservationId: "res-" + id}}}
			if o.RejectStock != "" {
				r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockRejected{StockRejected: &checkoutv1.StockRejected{OrderId: id, Reason: o.RejectStock}}}
			}
		case *checkoutv1.Envelope_ReleaseStock:
			r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReleased{StockReleased: &checkoutv1.StockReleased{OrderId: id}}}
		case *checkoutv1.Envelope_CommitReservation:
			switch {
			case o.SilentCommit:
				return nil
			case o.RejectCommit != "":
				r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_CommitRejected{CommitRejected: &checkoutv1.CommitRejected{OrderId: id, Reason: o.RejectCommit}}}
			default:
				r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReservationCommitted{ReservationCommitted: &checkoutv1.ReservationCommitted{OrderId: id}}}
			}
		case *checkoutv1.Envelope_ChargePayment:
			switch {
			case o.SilentPayment:
				return nil
			case o.DeclinePayment != "":
				r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentFailed{PaymentFailed: &checkoutv1.PaymentFailed{OrderId: id, Reason: o.DeclinePayment}}}
			default:
				r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentCaptured{PaymentCaptured: &checkoutv1.PaymentCaptured{OrderId: id, PaymentId: "pay-" + id}}}
			}
		case *checkoutv1.Envelope_RefundPayment:
			r = &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentRefunded{PaymentRefunded: &checkoutv1.PaymentRefunded{OrderId: id}}}
		default:
			return nil // not a command the fakes know: no reply
		}
		replies := []*checkoutv1.Envelope{r}
		for range max(o.Times, 1) - 1 {
			replies = append(replies, cloneEnvelope(r))
		}
		return replies
	}
}

func cloneEnvelope(e *checkoutv1.Envelope) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: e.Payload}
}
