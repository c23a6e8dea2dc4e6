package saga

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/outbox"
)

// Delivery is one delivery of a saga command at a participant: the
// operation its correlation headers name, and the command's message id.
type Delivery struct {
	Correlation
	// MessageID is the command's message id, the causation id of its reply.
	MessageID string
}

// ParseDelivery reads the Delivery of a command from its headers (the
// correlation headers, and outbox.HeaderMessageID, else messageID, the id
// the payload carries) and checks it against what the payload says: the
// saga it belongs to, and which step's action or, if compensation, whose
// compensation it is. Headers come from the network; a command whose
// headers are missing or disagree with its payload can never be handled
// right, and the error wraps ErrInvalidCorrelation.
func ParseDelivery(headers map[string]string, messageID, sagaID, step string, compensation bool) (Delivery, error) {
	corr, err := ParseCorrelation(headers)
	if err != nil {
		return Delivery{}, err
	}
	want := Correlation{SagaID: sagaID, Step: step, Op: OpOf(compensation)}
	if corr != want {
		return Delivery{}, fmt.Errorf("%w: headers name %s of step %q of saga %q, the payload %s of step %q of saga %q",
			ErrInvalidCorrelation, corr.Op, corr.Step, corr.SagaID, want.Op, want.Step, want.SagaID)
	}
	if id, ok := headers[outbox.HeaderMessageID]; ok {
		messageID = id
	}
	return Delivery{Correlation: corr, MessageID: messageID}, nil
}

// EncodeReply returns the payload of a reply, in the participant's format,
// given the reply's message id. A nil EncodeReply is no reply.
type EncodeReply func(messageID string) ([]byte, error)

// Participant runs a saga participant's transactions on its database: the
// Barrier, the business effect and the reply through the outbox, in one
// transaction, and wakes the outbox relay once a reply has committed. Create
// it with NewParticipant. It is safe for concurrent use.
type Participant struct {
	db         *gorm.DB
	replyTopic string
	notify     func()
}

// NewParticipant returns a Participant on db, migrated with MigrateBarrier
// and outbox.Migrate, that publishes replies on replyTopic and calls notify
// (the relay's Notify) after a transaction that wrote one committed.
func NewParticipant(db *database.DB, replyTopic string, notify func()) *Participant {
	return &Participant{db: db.DB, replyTopic: replyTopic, notify: notify}
}

// Pass handles one delivery in one transaction: it passes d's Barrier, calls
// fn with the outcome and a transaction for the business effect, and adds
// the reply fn returns, if any, to the outbox. It returns the barrier's
// outcome. An error from fn rolls everything back, barrier row included, so
// that the next delivery proceeds again. The span in ctx (the consumer's)
// gets the delivery's correlation and, once committed, the barrier's
// outcome as the attribute saga.barrier: a redelivered command shows as
// "duplicate" in its trace.
func (p *Participant) Pass(ctx context.Context, d Delivery, fn func(tx *gorm.DB, outcome Outcome) (EncodeReply, error)) (Outcome, error) {
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attrSagaID.String(d.SagaID), attrStep.String(d.Step), attrOperation.String(d.Op))
	var (
		outcome Outcome
		reply   EncodeReply
	)
	err := p.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var err error
		outcome, err = Barrier(ctx, tx, d.SagaID, d.Step, d.Op)
		if err != nil {
			return err
		}
		reply, err = fn(tx, outcome)
		if err != nil || reply == nil {
			return err
		}
		return p.addReply(ctx, tx, d, reply)
	})
	if err != nil {
		return 0, err
	}
	span.SetAttributes(attrBarrier.String(outcome.String()))
	if reply != nil {
		p.notify()
	}
	return outcome, nil
}

// Answer adds the reply to d to the outbox in a transaction of its own: for
// a participant whose effect lies outside its database (a payment
// provider), which answers once the effect is done, after the barrier's
// transaction committed.
func (p *Participant) Answer(ctx context.Context, d Delivery, reply EncodeReply) error {
	err := p.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return p.addReply(ctx, tx, d, reply)
	})
	if err != nil {
		return err
	}
	p.notify()
	return nil
}

// addReply adds the reply to d to the outbox through tx: a new message id,
// d's saga id as key and its correlation headers, which the orchestrator
// matches the reply with.
func (p *Participant) addReply(ctx context.Context, tx *gorm.DB, d Delivery, reply EncodeReply) error {
	id := uuid.NewString()
	payload, err := reply(id)
	if err != nil {
		return fmt.Errorf("encode reply: %w", err)
	}
	return outbox.Add(ctx, tx, outbox.Message{
		ID:      id,
		Topic:   p.replyTopic,
		Key:     d.SagaID,
		Headers: d.Headers(),
		Payload: payload,
	})
}
