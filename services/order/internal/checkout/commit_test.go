package checkout_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/checkout/checkouttest"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/internal/order/ordertest"
)

// The commit-reservation step's refusal (CommitRejected) is a case of
// TestSaga. These tests hold the commit's reply back, on a clock that moves
// only when told to, so that the order can be seen while the commit is in
// flight and the step's deadline passes exactly when the test says.

// untilCommit is the history of an order whose CommitReservation is sent
// and not answered yet.
var untilCommit = []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
	"PENDING charge-payment started", "PENDING charge-payment succeeded", "PENDING commit-reservation started"}

// TestConfirmedOnlyOnceCommitted checks that a paid order stays PENDING,
// without OrderConfirmed, while inventory has not answered
// CommitReservation, and is confirmed when ReservationCommitted arrives.
func TestConfirmedOnlyOnceCommitted(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := start(t, newURL(t), setup{clock: ordertest.NewClock(time.Now())})
			fakes := checkouttest.Start(t, h.broker, checkouttest.Behave(checkouttest.Options{SilentCommit: true}))
			placed := place(t, h, "4242424242424242")
			waitCommands(t, fakes, placed.ID, []string{"ReserveStock", "ChargePayment", "CommitReservation"})

			inFlight, err := h.orders.Get(t.Context(), placed.ID, "")
			if err != nil {
				t.Fatal(err)
			}
			if inFlight.Status != order.StatusPending {
				t.Errorf("order with its commit unanswered = %s, want %s", inFlight.Status, order.StatusPending)
			}
			if diff := cmp.Diff(untilCommit, history(inFlight)); diff != "" {
				t.Errorf("history with the commit unanswered (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"OrderPlaced"}, events(t, h, placed.ID)); diff != "" {
				t.Errorf("order events with the commit unanswered (-want +got):\n%s", diff)
			}

			fakes.Answer(t, placed.ID, "CommitReservation", &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReservationCommitted{
				ReservationCommitted: &checkoutv1.ReservationCommitted{OrderId: placed.ID},
			}})
			got := waitFinal(t, h, placed.ID)
			if got.Status != order.StatusConfirmed || got.CancelReason != "" {
				t.Errorf("order = %s %q, want %s", got.Status, got.CancelReason, order.StatusConfirmed)
			}
			wantHistory := append(untilCommit[:len(untilCommit):len(untilCommit)],
				"PENDING commit-reservation succeeded", "CONFIRMED order confirmed")
			if diff := cmp.Diff(wantHistory, history(got)); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"OrderPlaced", "OrderConfirmed"}, events(t, h, placed.ID)); diff != "" {
				t.Errorf("order events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCommitTimesOut checks a CommitReservation left unanswered past its
// deadline: the commit step has no compensation, so the payment is refunded
// and the stock released (inventory also releases a commit that landed
// late), and the order is cancelled.
func TestCommitTimesOut(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := ordertest.NewClock(time.Now())
			h := start(t, newURL(t), setup{clock: clock})
			fakes := checkouttest.Start(t, h.broker, checkouttest.Behave(checkouttest.Options{SilentCommit: true}))
			placed := place(t, h, "4242424242424242")
			waitCommands(t, fakes, placed.ID, []string{"ReserveStock", "ChargePayment", "CommitReservation"})

			clock.Advance(fast.CommitTimeout)
			got := waitFinal(t, h, placed.ID)
			waitCommands(t, fakes, placed.ID, []string{"ReserveStock", "ChargePayment", "CommitReservation", "RefundPayment", "ReleaseStock"})
			const reason = "commit-reservation: timed out"
			if got.Status != order.StatusCancelled || got.CancelReason != reason {
				t.Errorf("order = %s %q, want %s %q", got.Status, got.CancelReason, order.StatusCancelled, reason)
			}
			wantHistory := append(untilCommit[:len(untilCommit):len(untilCommit)], "PENDING commit-reservation timed out",
				"PENDING charge-payment compensating", "PENDING charge-payment compensated",
				"PENDING reserve-stock compensating", "PENDING reserve-stock compensated",
				"CANCELLED order cancelled: "+reason)
			if diff := cmp.Diff(wantHistory, history(got)); diff != "" {
				t.Errorf("history (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"OrderPlaced", "OrderCancelled"}, events(t, h, placed.ID)); diff != "" {
				t.Errorf("order events (-want +got):\n%s", diff)
			}
		})
	}
}
