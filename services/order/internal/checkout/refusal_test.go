package checkout_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/checkout"
	"github.com/microshop/microshop/services/order/internal/checkout/checkouttest"
	"github.com/microshop/microshop/services/order/internal/order"
)

// TestReleaseOfACommittedReservation runs a declined checkout whose
// ReleaseStock inventory answers with ReservationCommitted, as it does when
// the sale was already made: the orchestrator must take it as a refusal,
// keep the saga compensating and re-send the release, rather than cancel an
// order whose stock is sold (or dead-letter the reply).
func TestReleaseOfACommittedReservation(t *testing.T) {
	h := start(t, "sqlite:"+filepath.Join(t.TempDir(), "order.db"), nil)
	declining := checkouttest.Behave(checkouttest.Options{DeclinePayment: "card_declined"})
	fakes := checkouttest.Start(t, h.broker, func(cmd *checkoutv1.Envelope) []*checkoutv1.Envelope {
		if cmd.GetReleaseStock() == nil {
			return declining(cmd)
		}
		return []*checkoutv1.Envelope{{Payload: &checkoutv1.Envelope_ReservationCommitted{
			ReservationCommitted: &checkoutv1.ReservationCommitted{OrderId: checkoutv1.OrderID(cmd)},
		}}}
	})
	placed := place(t, h, "4000000000000002")

	// The refusal's reason is kept on the compensation's step; wait for it
	// and for the release to be sent again.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var reason string
		err := h.db.WithContext(t.Context()).Raw("SELECT reason FROM saga_steps WHERE saga_id = ? AND name = ? AND op = ?",
			placed.ID, checkout.StepReserveStock, saga.OpCompensate).Scan(&reason).Error
		if err != nil {
			t.Fatal(err)
		}
		releases := 0
		for _, name := range fakes.Commands(placed.ID) {
			if name == "ReleaseStock" {
				releases++
			}
		}
		if reason == checkout.ReasonReservationCommitted && releases >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: compensation reason %q, commands %v; want reason %q and ReleaseStock sent again",
				reason, fakes.Commands(placed.ID), checkout.ReasonReservationCommitted)
		}
		time.Sleep(20 * time.Millisecond)
	}

	inst, err := h.sagas.Instance(t.Context(), placed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if inst.Status != saga.StatusCompensating || inst.Step != 0 {
		t.Errorf("saga = %s at step %d, want %s at step 0 (reserve-stock)", inst.Status, inst.Step, saga.StatusCompensating)
	}
	o, err := h.orders.Get(t.Context(), placed.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != order.StatusPending {
		t.Errorf("order = %s %q, want it PENDING while its stock cannot be released", o.Status, o.CancelReason)
	}
}
