package checkout

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// FuzzReplyDecoding feeds arbitrary payloads and correlation headers, as a
// hostile or broken producer could put on the replies topic, through the
// decoding HandleReply does before it touches the database: it must return
// a reply or an error, never panic, and accept only payloads that answer the
// step and operation their headers name for the same order.
func FuzzReplyDecoding(f *testing.F) {
	good, err := checkoutv1.Marshal(&checkoutv1.Envelope{
		MessageId: "m-1", SagaId: "o-1", Step: checkoutv1.StepReserveStock, CorrelationId: "o-1",
		OccurredAt: timestamppb.New(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)),
		Payload:    &checkoutv1.Envelope_StockReserved{StockReserved: &checkoutv1.StockReserved{OrderId: "o-1", ReservationId: "r-1"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	rejected, err := checkoutv1.Marshal(&checkoutv1.Envelope{
		MessageId: "m-2", SagaId: "o-1", Step: checkoutv1.StepCommitReservation, CorrelationId: "o-1",
		OccurredAt: timestamppb.New(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)),
		Payload:    &checkoutv1.Envelope_CommitRejected{CommitRejected: &checkoutv1.CommitRejected{OrderId: "o-1", Reason: "the order's reservation is EXPIRED"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, "o-1", checkoutv1.StepReserveStock, saga.OpAction)
	f.Add(rejected, "o-1", checkoutv1.StepCommitReservation, saga.OpAction)
	f.Add(rejected, "o-1", checkoutv1.StepReserveStock, saga.OpCompensate)
	f.Add(good, "o-2", checkoutv1.StepReserveStock, saga.OpAction)
	f.Add(good, "o-1", checkoutv1.StepChargePayment, saga.OpCompensate)
	f.Add([]byte{0x0a, 0xff}, "", "", "")
	f.Fuzz(func(t *testing.T, payload []byte, sagaID, step, op string) {
		env, err := checkoutv1.Unmarshal(payload)
		if err != nil {
			return
		}
		corr, err := saga.ParseCorrelation(map[string]string{saga.HeaderSagaID: sagaID, saga.HeaderStep: step, saga.HeaderOp: op})
		if err != nil {
			return
		}
		if _, _, err := replyOutcome(env, corr); err != nil {
			if !errors.Is(err, ErrUnexpectedReply) {
				t.Fatalf("replyOutcome error %v does not wrap ErrUnexpectedReply", err)
			}
			return
		}
		if checkoutv1.OrderID(env) != corr.SagaID {
			t.Fatalf("accepted a reply about order %q under saga %q", checkoutv1.OrderID(env), corr.SagaID)
		}
	})
}
