package payment_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
	"github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/psp/simulator"
)

// now is the service's clock in these tests.
var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func eur(minor int64) money.Amount { return money.Amount{Minor: minor, Currency: "EUR"} }

// fixture is a Service on an in-memory store, charging through a real
// simulator served over HTTP. The store keeps the contract the database
// store keeps (paymenttest.StoreContract runs on both).
type fixture struct {
	sim   *simulator.Simulator
	store *paymenttest.MemoryStore
	svc   *payment.Service
}

// options tune a fixture; the zero value is a healthy PSP answering within 5s.
type options struct {
	hang       time.Duration // the simulator's hang (default 1h: only the client's timeout ends it)
	pspTimeout time.Duration // the client's timeout (default 5s)
}

func newFixture(t *testing.T, o options) *fixture {
	t.Helper()
	if o.hang == 0 {
		o.hang = time.Hour
	}
	if o.pspTimeout == 0 {
		o.pspTimeout = 5 * time.Second
	}
	f := &fixture{sim: simulator.New(simulator.Settings{Hang: o.hang})}
	f.store = paymenttest.NewMemoryStore()
	srv := httptest.NewServer(f.sim.Handler())
	t.Cleanup(srv.Close)
	f.svc = f.serviceAt(t, srv.URL, o.pspTimeout)
	return f
}

// serviceAt returns another Service on the fixture's store, charging
// through the PSP at url: a second replica, or the first one after the PSP
// moved.
func (f *fixture) serviceAt(t *testing.T, url string, timeout time.Duration) *payment.Service {
	client := psp.New(url, timeout, nil)
	t.Cleanup(client.Close)
	return payment.NewService(f.store, client, func() time.Time { return now })
}

func (f *fixture) setFaults(t *testing.T, faults simulator.Faults) {
	t.Helper()
	if err := f.sim.SetFaults(faults); err != nil {
		t.Fatal(err)
	}
}

func chargeRequest(key, card string, minor int64) payment.ChargeRequest {
	return payment.ChargeRequest{OrderID: "order-" + key, Amount: eur(minor), CardNumber: card, IdempotencyKey: key}
}

// wantPayment is what a charge request should have become.
func wantPayment(req payment.ChargeRequest, id string, status payment.Status, ref, reason string) payment.Payment {
	return payment.Payment{
		ID: id, OrderID: req.OrderID, Amount: req.Amount, Status: status, PSPReference: ref, FailureReason: reason,
		IdempotencyKey: req.IdempotencyKey, CreatedAt: now, UpdatedAt: now, Refunds: []payment.Refund{},
	}
}

// checkStored fails unless the store holds want.
func (f *fixture) checkStored(t *testing.T, want payment.Payment) {
	t.Helper()
	got, err := f.svc.Payment(t.Context(), want.ID)
	if err != nil {
		t.Fatalf("read back payment: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stored payment (-want +got):\n%s", diff)
	}
}

// checkCharges fails unless the simulator holds exactly n charges.
func (f *fixture) checkCharges(t *testing.T, n int) {
	t.Helper()
	if got := f.sim.Charges(); len(got) != n {
		t.Errorf("PSP charges = %d (%+v), want %d", len(got), got, n)
	}
}

// chargeRef returns the PSP's id of the charge under key.
func (f *fixture) chargeRef(t *testing.T, key string) string {
	t.Helper()
	ch, err := f.sim.ChargeByKey(key)
	if err != nil {
		t.Fatalf("PSP charge under %q: %v", key, err)
	}
	return ch.ID
}

func TestService(t *testing.T) {
	t.Run("charge outcomes", func(t *testing.T) { testChargeOutcomes(t) })
	t.Run("invalid requests", func(t *testing.T) { testInvalidRequests(t, newFixture(t, options{})) })
	t.Run("hang is ambiguous, Status settles it", func(t *testing.T) {
		testHang(t, newFixture(t, options{pspTimeout: 500 * time.Millisecond}))
	})
	t.Run("PSP down, then back", func(t *testing.T) { testPSPDown(t, newFixture(t, options{})) })
	t.Run("injected 503s", func(t *testing.T) { testInjectedFailures(t, newFixture(t, options{})) })
	t.Run("retries never charge twice", func(t *testing.T) { testRetries(t, newFixture(t, options{})) })
	t.Run("concurrent charges with one key", func(t *testing.T) { testConcurrentCharges(t, newFixture(t, options{})) })
	t.Run("refunds", func(t *testing.T) { testRefunds(t, newFixture(t, options{})) })
	t.Run("ambiguous refunds", func(t *testing.T) { testAmbiguousRefunds(t, newFixture(t, options{})) })
	t.Run("concurrent refunds", func(t *testing.T) { testConcurrentRefunds(t, newFixture(t, options{})) })
	t.Run("card numbers are not stored", func(t *testing.T) { testNoCardNumbers(t, newFixture(t, options{})) })
}

func testChargeOutcomes(t *testing.T) {
	f := newFixture(t, options{})
	charged := []struct { // the PSP made a charge, succeeded or declined
		name       string
		card       string
		wantStatus payment.Status
		wantReason string
	}{
		{"captured", simulator.CardSucceeds, payment.StatusCaptured, ""},
		{"declined", simulator.CardDeclined, payment.StatusFailed, "card_declined"},
		{"insufficient funds", simulator.CardInsufficientFunds, payment.StatusFailed, "insufficient_funds"},
	}
	for _, tt := range charged {
		t.Run(tt.name, func(t *testing.T) {
			req := chargeRequest(tt.name, tt.card, 1999)
			got, err := f.svc.Charge(t.Context(), req)
			if err != nil {
				t.Fatalf("Charge = %v, want a final payment and no error", err)
			}
			want := wantPayment(req, got.ID, tt.wantStatus, f.chargeRef(t, req.IdempotencyKey), tt.wantReason)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Charge (-want +got):\n%s", diff)
			}
			f.checkStored(t, want)
		})
	}
	t.Run("rejected by the PSP", func(t *testing.T) { // no charge at the PSP
		req := chargeRequest("rejected by the PSP", "4242424242424241", 1999)
		got, err := f.svc.Charge(t.Context(), req)
		if err != nil {
			t.Fatalf("Charge = %v, want a final payment and no error", err)
		}
		want := wantPayment(req, got.ID, payment.StatusFailed, "", "rejected: card_number: must be 12 to 19 digits passing the Luhn check")
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Charge (-want +got):\n%s", diff)
		}
		f.checkStored(t, want)
	})
	f.checkCharges(t, 3)
}

func testInvalidRequests(t *testing.T, f *fixture) {
	valid := chargeRequest("k", simulator.CardSucceeds, 100)
	tests := []struct {
		name   string
		modify func(r *payment.ChargeRequest)
	}{
		{"no order", func(r *payment.ChargeRequest) { r.OrderID = "" }},
		{"zero amount", func(r *payment.ChargeRequest) { r.Amount.Minor = 0 }},
		{"negative amount", func(r *payment.ChargeRequest) { r.Amount.Minor = -1 }},
		{"no currency", func(r *payment.ChargeRequest) { r.Amount.Currency = "" }},
		{"no card", func(r *payment.ChargeRequest) { r.CardNumber = "" }},
		{"no key", func(r *payment.ChargeRequest) { r.IdempotencyKey = "" }},
		{"key too long", func(r *payment.ChargeRequest) { r.IdempotencyKey = strings.Repeat("k", 256) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := valid
			tt.modify(&req)
			if _, err := f.svc.Charge(t.Context(), req); !errors.Is(err, payment.ErrInvalid) {
				t.Errorf("Charge = %v, want ErrInvalid", err)
			}
		})
	}
	refunds := []payment.RefundRequest{
		{PaymentID: "", Amount: eur(1), IdempotencyKey: "r"},
		{PaymentID: "p", Amount: eur(0), IdempotencyKey: "r"},
		{PaymentID: "p", Amount: eur(1), IdempotencyKey: ""},
	}
	for _, req := range refunds {
		if _, err := f.svc.Refund(t.Context(), req); !errors.Is(err, payment.ErrInvalid) {
			t.Errorf("Refund(%+v) = %v, want ErrInvalid", req, err)
		}
	}
	f.checkCharges(t, 0)
}

func testHang(t *testing.T, f *fixture) {
	ctx := t.Context()
	req := chargeRequest("hang", simulator.CardHangs, 1999)
	got, err := f.svc.Charge(ctx, req)
	if !errors.Is(err, payment.ErrPSPAmbiguous) {
		t.Fatalf("Charge of the hanging card = %v, want ErrPSPAmbiguous", err)
	}
	pending := wantPayment(req, got.ID, payment.StatusPending, "", "")
	if diff := cmp.Diff(pending, got); diff != "" {
		t.Errorf("ambiguous Charge returned (-want +got):\n%s", diff)
	}
	f.checkStored(t, pending)

	settled, err := f.svc.Status(ctx, req.IdempotencyKey)
	if err != nil {
		t.Fatal(err)
	}
	want := wantPayment(req, got.ID, payment.StatusCaptured, f.chargeRef(t, req.IdempotencyKey), "")
	if diff := cmp.Diff(want, settled); diff != "" {
		t.Errorf("Status settled the payment as (-want +got):\n%s", diff)
	}
	f.checkStored(t, want)

	// A final payment is returned without asking the PSP, which is failing now.
	f.setFaults(t, simulator.Faults{FailureRate: 1})
	if again, err := f.svc.Status(ctx, req.IdempotencyKey); err != nil || !cmp.Equal(want, again) {
		t.Errorf("Status of a final payment = %+v, %v; want it unchanged", again, err)
	}
	if _, err := f.svc.Status(ctx, "unknown"); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("Status(unknown) = %v, want ErrNotFound", err)
	}
	f.checkCharges(t, 1)
}

func testPSPDown(t *testing.T, f *fixture) {
	ctx := t.Context()
	down := httptest.NewServer(f.sim.Handler())
	down.Close()
	offline := f.serviceAt(t, down.URL, 5*time.Second)

	retried := chargeRequest("retried", simulator.CardSucceeds, 500)
	neverSent := chargeRequest("never-sent", simulator.CardSucceeds, 700)
	for _, req := range []payment.ChargeRequest{retried, neverSent} {
		got, err := offline.Charge(ctx, req)
		if !errors.Is(err, payment.ErrPSPAmbiguous) || got.Status != payment.StatusPending {
			t.Fatalf("Charge with the PSP down = %+v, %v; want PENDING and ErrPSPAmbiguous", got, err)
		}
		if got, err := offline.Status(ctx, req.IdempotencyKey); !errors.Is(err, payment.ErrPSPAmbiguous) || got.Status != payment.StatusPending {
			t.Errorf("Status with the PSP down = %+v, %v; want PENDING and ErrPSPAmbiguous", got, err)
		}
	}

	// The PSP is back (f.svc reaches it): retrying the charge with its key captures it.
	got, err := f.svc.Charge(ctx, retried)
	if err != nil || got.Status != payment.StatusCaptured {
		t.Errorf("Charge retried after recovery = %+v, %v; want CAPTURED", got, err)
	}
	// The PSP never saw the other one: Status settles it as not charged.
	first, err := f.store.PaymentByKey(ctx, neverSent.IdempotencyKey)
	if err != nil {
		t.Fatal(err)
	}
	got, err = f.svc.Status(ctx, neverSent.IdempotencyKey)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantPayment(neverSent, first.ID, payment.StatusFailed, "", "not charged"), got); diff != "" {
		t.Errorf("Status after recovery (-want +got):\n%s", diff)
	}
	f.checkCharges(t, 1)
}

func testInjectedFailures(t *testing.T, f *fixture) {
	ctx := t.Context()
	req := chargeRequest("flaky", simulator.CardSucceeds, 300)
	f.setFaults(t, simulator.Faults{FailureRate: 1})
	got, err := f.svc.Charge(ctx, req)
	if !errors.Is(err, payment.ErrPSPAmbiguous) || got.Status != payment.StatusPending {
		t.Fatalf("Charge under 503s = %+v, %v; want PENDING and ErrPSPAmbiguous", got, err)
	}
	if _, err := f.svc.Status(ctx, req.IdempotencyKey); !errors.Is(err, payment.ErrPSPAmbiguous) {
		t.Errorf("Status under 503s = %v, want ErrPSPAmbiguous", err)
	}
	f.checkCharges(t, 0)

	f.setFaults(t, simulator.Faults{})
	settled, err := f.svc.Charge(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantPayment(req, got.ID, payment.StatusCaptured, f.chargeRef(t, req.IdempotencyKey), ""), settled); diff != "" {
		t.Errorf("Charge retried once the faults stopped (-want +got):\n%s", diff)
	}
	f.checkCharges(t, 1)
}

func testRetries(t *testing.T, f *fixture) {
	ctx := t.Context()
	req := chargeRequest("twice", simulator.CardSucceeds, 1000)
	first, err := f.svc.Charge(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Redelivered commands: the final payment comes back, the PSP is not asked.
	f.setFaults(t, simulator.Faults{FailureRate: 1})
	for range 3 {
		again, err := f.svc.Charge(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(first, again); diff != "" {
			t.Errorf("repeated Charge (-first +again):\n%s", diff)
		}
	}
	f.setFaults(t, simulator.Faults{})

	conflicts := []struct {
		name string
		req  payment.ChargeRequest
	}{
		{"another amount", payment.ChargeRequest{OrderID: req.OrderID, Amount: eur(999), CardNumber: req.CardNumber, IdempotencyKey: req.IdempotencyKey}},
		{"another order", payment.ChargeRequest{OrderID: "other", Amount: req.Amount, CardNumber: req.CardNumber, IdempotencyKey: req.IdempotencyKey}},
	}
	for _, tt := range conflicts {
		if _, err := f.svc.Charge(ctx, tt.req); !errors.Is(err, payment.ErrIdempotencyConflict) {
			t.Errorf("Charge with the key and %s = %v, want ErrIdempotencyConflict", tt.name, err)
		}
	}

	// A PENDING payment is charged again with the same key: the PSP answers
	// with the charge it made, once. Another card under that key is refused
	// by the PSP and leaves the payment PENDING.
	hung := chargeRequest("hung", simulator.CardHangs, 1000) // replays of the hanging card answer at once
	if _, _, err := f.sim.Charge(hung.IdempotencyKey, simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardHangs}); err != nil {
		t.Fatal(err) // the PSP charged, but the answer never reached us ...
	}
	p, err := f.store.CreatePayment(ctx, payment.Payment{ // ... so we hold a PENDING payment
		ID: "0190a0a0-0000-7000-8000-000000000001", OrderID: hung.OrderID, Amount: hung.Amount, Status: payment.StatusPending,
		IdempotencyKey: hung.IdempotencyKey, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	otherCard := hung
	otherCard.CardNumber = "5555555555554444"
	if got, err := f.svc.Charge(ctx, otherCard); !errors.Is(err, payment.ErrIdempotencyConflict) || got.Status != payment.StatusPending {
		t.Errorf("Charge of a PENDING payment with another card = %+v, %v; want PENDING and ErrIdempotencyConflict", got, err)
	}
	got, err := f.svc.Charge(ctx, hung)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantPayment(hung, p.ID, payment.StatusCaptured, f.chargeRef(t, hung.IdempotencyKey), ""), got); diff != "" {
		t.Errorf("Charge of a PENDING payment (-want +got):\n%s", diff)
	}
	f.checkCharges(t, 2)
}

func testConcurrentCharges(t *testing.T, f *fixture) {
	const workers = 20
	req := chargeRequest("together", simulator.CardSucceeds, 1000)
	results := make([]payment.Payment, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			p, err := f.svc.Charge(t.Context(), req)
			if err != nil {
				t.Errorf("Charge: %v", err)
			}
			results[i] = p
		})
	}
	wg.Wait()
	want := wantPayment(req, results[0].ID, payment.StatusCaptured, f.chargeRef(t, req.IdempotencyKey), "")
	for i, got := range results {
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("worker %d (-want +got):\n%s", i, diff)
		}
	}
	f.checkCharges(t, 1)
}

func testRefunds(t *testing.T, f *fixture) {
	ctx := t.Context()
	p, err := f.svc.Charge(ctx, chargeRequest("paid", simulator.CardSucceeds, 1000))
	if err != nil {
		t.Fatal(err)
	}
	declined, err := f.svc.Charge(ctx, chargeRequest("declined", simulator.CardDeclined, 1000))
	if err != nil {
		t.Fatal(err)
	}
	refund := func(key string, minor int64) payment.RefundRequest {
		return payment.RefundRequest{PaymentID: p.ID, Amount: eur(minor), IdempotencyKey: key}
	}
	first, err := f.svc.Refund(ctx, refund("r1", 600))
	if err != nil {
		t.Fatal(err)
	}
	pspRefund, err := f.sim.RefundByKey("r1")
	if err != nil {
		t.Fatal(err)
	}
	want := payment.Refund{
		ID: first.ID, PaymentID: p.ID, Amount: eur(600), Status: payment.RefundSucceeded, PSPReference: pspRefund.ID,
		IdempotencyKey: "r1", CreatedAt: now, UpdatedAt: now,
	}
	if diff := cmp.Diff(want, first); diff != "" {
		t.Errorf("Refund (-want +got):\n%s", diff)
	}

	tests := []struct { // in order: each row sees the refunds the previous ones made
		name       string
		req        payment.RefundRequest
		wantErr    error
		wantStatus payment.RefundStatus // "" with an error: no refund is returned
	}{
		{"more than is left", refund("r2", 500), payment.ErrRefundExceedsPayment, ""},
		{"exactly what is left", refund("r3", 400), nil, payment.RefundSucceeded},
		{"one cent more", refund("r4", 1), payment.ErrRefundExceedsPayment, ""},
		{"a replay, limits aside", refund("r1", 600), nil, payment.RefundSucceeded},
		{"a key reused with another amount", refund("r1", 100), payment.ErrIdempotencyConflict, ""},
		{"another currency", payment.RefundRequest{PaymentID: p.ID, Amount: money.Amount{Minor: 1, Currency: "USD"}, IdempotencyKey: "r5"}, payment.ErrInvalid, ""},
		{"a failed payment", payment.RefundRequest{PaymentID: declined.ID, Amount: eur(1), IdempotencyKey: "r6"}, payment.ErrNotCaptured, ""},
		{"an unknown payment", payment.RefundRequest{PaymentID: "0190a0a0-0000-7000-8000-000000000000", Amount: eur(1), IdempotencyKey: "r7"}, payment.ErrNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := f.svc.Refund(ctx, tt.req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Refund = %+v, %v; want %v", r, err, tt.wantErr)
			}
			if r.Status != tt.wantStatus {
				t.Errorf("refund status = %q, want %q", r.Status, tt.wantStatus)
			}
		})
	}
	stored, err := f.svc.Payment(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored.Refunds) != 2 || !cmp.Equal(want, stored.Refunds[0]) {
		t.Errorf("payment's refunds = %+v, want r1 and r3", stored.Refunds)
	}
	if got := len(f.sim.Refunds()); got != 2 {
		t.Errorf("PSP refunds = %d, want 2", got)
	}
	if _, err := f.svc.RefundStatus(ctx, "unknown"); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("RefundStatus(unknown) = %v, want ErrNotFound", err)
	}
}

func testAmbiguousRefunds(t *testing.T, f *fixture) {
	ctx := t.Context()
	p, err := f.svc.Charge(ctx, chargeRequest("paid", simulator.CardSucceeds, 1000))
	if err != nil {
		t.Fatal(err)
	}
	f.setFaults(t, simulator.Faults{FailureRate: 1})
	lost, err := f.svc.Refund(ctx, payment.RefundRequest{PaymentID: p.ID, Amount: eur(1000), IdempotencyKey: "lost"})
	if !errors.Is(err, payment.ErrPSPAmbiguous) || lost.Status != payment.RefundPending {
		t.Fatalf("Refund under 503s = %+v, %v; want PENDING and ErrPSPAmbiguous", lost, err)
	}
	if _, err := f.svc.RefundStatus(ctx, "lost"); !errors.Is(err, payment.ErrPSPAmbiguous) {
		t.Errorf("RefundStatus under 503s = %v, want ErrPSPAmbiguous", err)
	}
	// While it is PENDING its amount stays reserved.
	if _, err := f.svc.Refund(ctx, payment.RefundRequest{PaymentID: p.ID, Amount: eur(1), IdempotencyKey: "extra"}); !errors.Is(err, payment.ErrRefundExceedsPayment) {
		t.Errorf("Refund beside a pending full refund = %v, want ErrRefundExceedsPayment", err)
	}
	f.setFaults(t, simulator.Faults{})

	// The PSP never saw it: RefundStatus fails it and gives the amount back.
	got, err := f.svc.RefundStatus(ctx, "lost")
	if err != nil || got.Status != payment.RefundFailed || got.FailureReason != "not refunded" {
		t.Fatalf("RefundStatus = %+v, %v; want FAILED not refunded", got, err)
	}

	// A refund whose answer was lost although the PSP made it settles as SUCCEEDED.
	f.setFaults(t, simulator.Faults{FailureRate: 1})
	made, err := f.svc.Refund(ctx, payment.RefundRequest{PaymentID: p.ID, Amount: eur(1000), IdempotencyKey: "made"})
	if !errors.Is(err, payment.ErrPSPAmbiguous) {
		t.Fatalf("Refund under 503s = %v, want ErrPSPAmbiguous", err)
	}
	f.setFaults(t, simulator.Faults{})
	pspRefund, _, err := f.sim.Refund("made", simulator.RefundRequest{ChargeID: p.PSPReference, Amount: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got, err = f.svc.RefundStatus(ctx, "made")
	if err != nil {
		t.Fatal(err)
	}
	want := made
	want.Status, want.PSPReference = payment.RefundSucceeded, pspRefund.ID
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("RefundStatus (-want +got):\n%s", diff)
	}
	if got := len(f.sim.Refunds()); got != 1 {
		t.Errorf("PSP refunds = %d, want 1", got)
	}
}

func testConcurrentRefunds(t *testing.T, f *fixture) {
	p, err := f.svc.Charge(t.Context(), chargeRequest("paid", simulator.CardSucceeds, 1000))
	if err != nil {
		t.Fatal(err)
	}
	const workers = 20 // refunds of 100 against 1000: exactly 10 fit
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			_, errs[i] = f.svc.Refund(t.Context(), payment.RefundRequest{PaymentID: p.ID, Amount: eur(100), IdempotencyKey: fmt.Sprint("r", i)})
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, err := range errs {
		switch {
		case err == nil:
			count["refunded"]++
		case errors.Is(err, payment.ErrRefundExceedsPayment):
			count["exceeds"]++
		default:
			t.Errorf("Refund: %v", err)
		}
	}
	if diff := cmp.Diff(map[string]int{"refunded": 10, "exceeds": 10}, count); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}
	var total int64
	for _, r := range f.sim.Refunds() {
		total += r.Amount
	}
	if total != 1000 {
		t.Errorf("PSP refunded %d in total, want 1000", total)
	}
}

func testNoCardNumbers(t *testing.T, f *fixture) {
	cards := []string{simulator.CardSucceeds, simulator.CardDeclined, "4242424242424241"}
	for i, card := range cards {
		if _, err := f.svc.Charge(t.Context(), chargeRequest(fmt.Sprint("k", i), card, 100)); err != nil {
			t.Fatal(err)
		}
	}
	// Every field the service hands the store, failure reasons included.
	for i := range cards {
		p, err := f.store.PaymentByKey(t.Context(), fmt.Sprint("k", i))
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprintf("%+v", p); strings.Contains(s, "4242424242") || strings.Contains(s, "4000000000") {
			t.Errorf("stored payment %s: card numbers must not be stored", s)
		}
	}
}

// TestOpenBreakerFailsNewChargesOnly checks a PSP client behind an open
// circuit breaker: a new charge, which cannot have reached the PSP, fails at
// once with ReasonPSPUnavailable; a pending one, whose earlier attempt may
// have charged, stays PENDING and ambiguous, for the status query to
// settle — which, with the breaker open, leaves it so too.
func TestOpenBreakerFailsNewChargesOnly(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, options{})
	down := httptest.NewServer(f.sim.Handler())
	down.Close()
	breakers, err := breaker.NewSet(breaker.Config{}, map[string]breaker.Rules{
		"psp": {MinRequests: 1, ErrorRatio: 1, OpenFor: breaker.Duration(time.Hour)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(breakers.Close)
	client := psp.New(down.URL, time.Second, func(next http.RoundTripper) http.RoundTripper { return breakers.RoundTripper("psp", next) })
	t.Cleanup(client.Close)
	guarded := payment.NewService(f.store, client, func() time.Time { return now })

	earlier := chargeRequest("earlier", simulator.CardSucceeds, 500)
	if got, err := guarded.Charge(ctx, earlier); !errors.Is(err, payment.ErrPSPAmbiguous) || got.Status != payment.StatusPending {
		t.Fatalf("Charge with the PSP down = %+v, %v; want PENDING and ErrPSPAmbiguous", got, err)
	}
	if breakers.State("psp") != breaker.Open {
		t.Fatalf("breaker %s after a refused connection, want open", breakers.State("psp"))
	}

	got, err := guarded.Charge(ctx, chargeRequest("new", simulator.CardSucceeds, 700))
	if err != nil || got.Status != payment.StatusFailed || got.FailureReason != payment.ReasonPSPUnavailable {
		t.Errorf("new Charge with the breaker open = %s %q, %v; want FAILED %q", got.Status, got.FailureReason, err, payment.ReasonPSPUnavailable)
	}
	if got, err := guarded.Charge(ctx, earlier); !errors.Is(err, payment.ErrPSPAmbiguous) || got.Status != payment.StatusPending {
		t.Errorf("Charge again of the pending payment with the breaker open = %s, %v; want PENDING and ErrPSPAmbiguous", got.Status, err)
	}
	if got, err := guarded.Status(ctx, earlier.IdempotencyKey); !errors.Is(err, payment.ErrPSPAmbiguous) || got.Status != payment.StatusPending {
		t.Errorf("Status with the breaker open = %s, %v; want PENDING and ErrPSPAmbiguous", got.Status, err)
	}
}
