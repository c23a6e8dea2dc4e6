package checkout

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// ErrUnexpectedReply is wrapped by HandleReply's error for a reply whose
// payload does not answer the command its headers name, or which is no
// reply at all.
var ErrUnexpectedReply = errors.New("unexpected reply")

// HandleReply is the messaging.Handler of the replies topic: it decodes a
// participant's reply and hands it to the orchestrator. A message that can
// never be handled (no envelope, no correlation headers, a payload that does
// not answer the command its headers name) is a messaging.Permanent error,
// for the dead-letter topic; other errors (the database) are worth a retry.
// Duplicate and late replies change nothing.
func (c *Checkout) HandleReply(ctx context.Context, msg kafka.Message) error {
	env, err := checkoutv1.Unmarshal(msg.Value)
	if err != nil {
		return messaging.Permanent(err)
	}
	corr, err := saga.ParseCorrelation(messaging.Headers(msg))
	if err != nil {
		return messaging.Permanent(err)
	}
	ok, reason, err := replyOutcome(env, corr)
	if err != nil {
		return messaging.Permanent(err)
	}
	if err := c.orch.HandleReply(ctx, corr.Reply(ok, reason)); err != nil {
		if errors.Is(err, saga.ErrInvalidCorrelation) || errors.Is(err, saga.ErrUnknownDefinition) {
			return messaging.Permanent(err)
		}
		messageID, _ := messaging.Header(msg, outbox.HeaderMessageID)
		return fmt.Errorf("reply %s to %s %s of order %s: %w", messageID, corr.Op, corr.Step, corr.SagaID, err)
	}
	c.notify() // the transition may have added commands and events
	return nil
}

// replyOutcome checks that env is a reply answering the command corr names,
// about the same order, and returns whether it succeeded and why not.
func replyOutcome(env *checkoutv1.Envelope, corr saga.Correlation) (ok bool, reason string, err error) {
	name := checkoutv1.PayloadName(env)
	role, known := checkoutv1.RoleOf(env)
	switch {
	case !known || !role.Reply:
		return false, "", fmt.Errorf("%w: %s is not a reply", ErrUnexpectedReply, name)
	case role.Step != corr.Step || saga.OpOf(role.Compensation) != corr.Op:
		return false, "", fmt.Errorf("%w: %s does not answer %s of step %s", ErrUnexpectedReply, name, corr.Op, corr.Step)
	case checkoutv1.OrderID(env) != corr.SagaID:
		return false, "", fmt.Errorf("%w: %s about order %s has saga id %s", ErrUnexpectedReply, name, checkoutv1.OrderID(env), corr.SagaID)
	}
	return role.OK, checkoutv1.ReasonOf(env), nil
}
