package checkout

import (
	"errors"
	"testing"

	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// TestReplyOutcome checks what a reply means for the operation its headers
// name, and which pairings are refused.
func TestReplyOutcome(t *testing.T) {
	committed := &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReservationCommitted{ReservationCommitted: &checkoutv1.ReservationCommitted{OrderId: "o-1"}}}
	rejected := &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockRejected{StockRejected: &checkoutv1.StockRejected{OrderId: "o-1", Reason: "insufficient stock"}}}
	released := &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReleased{StockReleased: &checkoutv1.StockReleased{OrderId: "o-1"}}}
	commitRejected := &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_CommitRejected{CommitRejected: &checkoutv1.CommitRejected{OrderId: "o-1", Reason: "the order's reservation is EXPIRED"}}}
	tests := []struct {
		name       string
		env        *checkoutv1.Envelope
		step, op   string
		wantOK     bool
		wantReason string
		wantErr    error
	}{
		{"stock released", released, checkoutv1.StepReserveStock, saga.OpCompensate, true, "", nil},
		{"stock rejected", rejected, checkoutv1.StepReserveStock, saga.OpAction, false, "insufficient stock", nil},
		{"reservation committed answers its commit", committed, checkoutv1.StepCommitReservation, saga.OpAction, true, "", nil},
		{"commit rejected refuses the commit", commitRejected, checkoutv1.StepCommitReservation, saga.OpAction, false, "the order's reservation is EXPIRED", nil},
		{"reservation committed does not answer a release", committed, checkoutv1.StepReserveStock, saga.OpCompensate, false, "", ErrUnexpectedReply},
		{"commit rejected does not answer a release", commitRejected, checkoutv1.StepReserveStock, saga.OpCompensate, false, "", ErrUnexpectedReply},
		{"commit rejected does not answer a reserve", commitRejected, checkoutv1.StepReserveStock, saga.OpAction, false, "", ErrUnexpectedReply},
		{"reservation committed does not answer a reserve", committed, checkoutv1.StepReserveStock, saga.OpAction, false, "", ErrUnexpectedReply},
		{"reservation committed does not answer a refund", committed, checkoutv1.StepChargePayment, saga.OpCompensate, false, "", ErrUnexpectedReply},
		{"stock rejected does not answer a release", rejected, checkoutv1.StepReserveStock, saga.OpCompensate, false, "", ErrUnexpectedReply},
		{"a command is no reply", &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReleaseStock{ReleaseStock: &checkoutv1.ReleaseStock{OrderId: "o-1"}}},
			checkoutv1.StepReserveStock, saga.OpCompensate, false, "", ErrUnexpectedReply},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, reason, err := replyOutcome(tt.env, saga.Correlation{SagaID: "o-1", Step: tt.step, Op: tt.op})
			if ok != tt.wantOK || reason != tt.wantReason || !errors.Is(err, tt.wantErr) {
				t.Errorf("replyOutcome(%s to %s %s) = %v, %q, %v; want %v, %q, %v",
					checkoutv1.PayloadMessage(tt.env).ProtoReflect().Descriptor().Name(), tt.op, tt.step, ok, reason, err, tt.wantOK, tt.wantReason, tt.wantErr)
			}
		})
	}
}
