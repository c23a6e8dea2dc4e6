package paymenttest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/payment/internal/payment"
)

// created is the creation time of the contract's rows: microsecond
// precision, the finest both databases keep.
var created = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

func eur(minor int64) money.Amount { return money.Amount{Minor: minor, Currency: "EUR"} }

func newID(t *testing.T) string {
	t.Helper()
	id, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	return id.String()
}

func pending(t *testing.T, orderID, key string, amount money.Amount) payment.Payment {
	return payment.Payment{
		ID: newID(t), OrderID: orderID, Amount: amount, Status: payment.StatusPending,
		IdempotencyKey: key, CreatedAt: created, UpdatedAt: created, Refunds: []payment.Refund{},
	}
}

func pendingRefund(t *testing.T, paymentID, key string, amount money.Amount) payment.Refund {
	return payment.Refund{
		ID: newID(t), PaymentID: paymentID, Amount: amount, Status: payment.RefundPending,
		IdempotencyKey: key, CreatedAt: created, UpdatedAt: created,
	}
}

// captured stores a CAPTURED payment of amount.
func captured(t *testing.T, s payment.Store, key string, amount money.Amount) payment.Payment {
	t.Helper()
	p, err := s.CreatePayment(t.Context(), pending(t, "order-"+key, key, amount))
	if err != nil {
		t.Fatal(err)
	}
	p, err = s.SettlePayment(t.Context(), p.ID, payment.Outcome{Succeeded: true, PSPReference: "ch_" + key, At: created.Add(time.Second)})
	if err != nil || p.Status != payment.StatusCaptured {
		t.Fatalf("capture = %+v, %v", p, err)
	}
	return p
}

// StoreContract checks that a payment.Store keeps the promises the Service
// relies on. newStore returns an empty store; it is called once per subtest.
func StoreContract(t *testing.T, newStore func(t *testing.T) payment.Store) {
	t.Run("payments", func(t *testing.T) { testPayments(t, newStore(t)) })
	t.Run("listing an order's payments", func(t *testing.T) { testPaymentsOfOrder(t, newStore(t)) })
	t.Run("settling a payment", func(t *testing.T) { testSettlePayment(t, newStore(t)) })
	t.Run("refunds", func(t *testing.T) { testRefunds(t, newStore(t)) })
	t.Run("settling a refund", func(t *testing.T) { testSettleRefund(t, newStore(t)) })
	t.Run("concurrent payments with one key", func(t *testing.T) { testConcurrentPayments(t, newStore(t)) })
	t.Run("concurrent settlements", func(t *testing.T) { testConcurrentSettlements(t, newStore(t)) })
	t.Run("concurrent refunds", func(t *testing.T) { testConcurrentRefunds(t, newStore(t)) })
}

func testPayments(t *testing.T, s payment.Store) {
	ctx := t.Context()
	want := pending(t, "order-1", "key-1", eur(1999))
	got, err := s.CreatePayment(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreatePayment (-want +got):\n%s", diff)
	}
	for name, read := range map[string]func() (payment.Payment, error){
		"by id":  func() (payment.Payment, error) { return s.Payment(ctx, want.ID) },
		"by key": func() (payment.Payment, error) { return s.PaymentByKey(ctx, "key-1") },
	} {
		got, err := read()
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("read %s (-want +got):\n%s", name, diff)
		}
	}

	again := pending(t, "order-2", "key-1", eur(5))
	got, err = s.CreatePayment(ctx, again)
	if err != nil {
		t.Fatalf("CreatePayment with a taken key: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CreatePayment with a taken key returned (-the first payment +got):\n%s", diff)
	}
	if _, err := s.Payment(ctx, again.ID); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("the second payment was stored too (err %v)", err)
	}

	if _, err := s.Payment(ctx, newID(t)); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("Payment(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.PaymentByKey(ctx, "unknown"); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("PaymentByKey(unknown) = %v, want ErrNotFound", err)
	}
}

func testPaymentsOfOrder(t *testing.T, s payment.Store) {
	ctx := t.Context()
	var want []payment.Payment
	for i := range 5 {
		p, err := s.CreatePayment(ctx, pending(t, "order-1", fmt.Sprint("key-", i), eur(100)))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, p)
	}
	if _, err := s.CreatePayment(ctx, pending(t, "order-2", "other", eur(100))); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		orderID string
		after   string
		limit   int
		want    []payment.Payment
	}{
		{"all", "order-1", "", 10, want},
		{"first page", "order-1", "", 2, want[:2]},
		{"next page", "order-1", want[1].ID, 2, want[2:4]},
		{"last page", "order-1", want[3].ID, 2, want[4:]},
		{"past the end", "order-1", want[4].ID, 2, []payment.Payment{}},
		{"unknown order", "order-3", "", 10, []payment.Payment{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.PaymentsOfOrder(ctx, tt.orderID, tt.after, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PaymentsOfOrder (-want +got):\n%s", diff)
			}
		})
	}
}

func testSettlePayment(t *testing.T, s payment.Store) {
	ctx := t.Context()
	settledAt := created.Add(time.Minute)
	tests := []struct {
		name    string
		outcome payment.Outcome
		want    func(p payment.Payment) payment.Payment
	}{
		{"captured", payment.Outcome{Succeeded: true, PSPReference: "ch_1", At: settledAt}, func(p payment.Payment) payment.Payment {
			p.Status, p.PSPReference, p.UpdatedAt = payment.StatusCaptured, "ch_1", settledAt
			return p
		}},
		{"declined", payment.Outcome{PSPReference: "ch_2", FailureReason: "card_declined", At: settledAt}, func(p payment.Payment) payment.Payment {
			p.Status, p.PSPReference, p.FailureReason, p.UpdatedAt = payment.StatusFailed, "ch_2", "card_declined", settledAt
			return p
		}},
		{"never charged", payment.Outcome{FailureReason: "not charged", At: settledAt}, func(p payment.Payment) payment.Payment {
			p.Status, p.FailureReason, p.UpdatedAt = payment.StatusFailed, "not charged", settledAt
			return p
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.CreatePayment(ctx, pending(t, "order", tt.name, eur(100)))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want(p)
			got, err := s.SettlePayment(ctx, p.ID, tt.outcome)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("SettlePayment (-want +got):\n%s", diff)
			}
			// A final payment never moves again.
			got, err = s.SettlePayment(ctx, p.ID, payment.Outcome{Succeeded: !tt.outcome.Succeeded, PSPReference: "ch_other", At: settledAt.Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("second SettlePayment changed the payment (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := s.SettlePayment(ctx, newID(t), payment.Outcome{Succeeded: true, PSPReference: "ch", At: settledAt}); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("SettlePayment(unknown) = %v, want ErrNotFound", err)
	}
}

func testRefunds(t *testing.T, s payment.Store) {
	ctx := t.Context()
	p := captured(t, s, "paid", eur(1000))

	first := pendingRefund(t, p.ID, "r1", eur(600))
	got, err := s.CreateRefund(ctx, first)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("CreateRefund (-want +got):\n%s", diff)
	}
	if got, err := s.RefundByKey(ctx, "r1"); err != nil || !cmp.Equal(first, got) {
		t.Errorf("RefundByKey = %+v, %v; want %+v", got, err, first)
	}

	unpaid, err := s.CreatePayment(ctx, pending(t, "order", "unpaid", eur(1000)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		refund  payment.Refund
		wantErr error
	}{
		{"more than is left", pendingRefund(t, p.ID, "r2", eur(401)), payment.ErrRefundExceedsPayment},
		{"another currency", pendingRefund(t, p.ID, "r2", money.Amount{Minor: 1, Currency: "USD"}), payment.ErrInvalid},
		{"a pending payment", pendingRefund(t, unpaid.ID, "r2", eur(1)), payment.ErrNotCaptured},
		{"an unknown payment", pendingRefund(t, newID(t), "r2", eur(1)), payment.ErrNotFound},
		{"exactly what is left", pendingRefund(t, p.ID, "r3", eur(400)), nil},
		{"one more cent", pendingRefund(t, p.ID, "r4", eur(1)), payment.ErrRefundExceedsPayment},
		{"a taken key returns that refund, limits aside", pendingRefund(t, p.ID, "r1", eur(999)), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateRefund(ctx, tt.refund)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CreateRefund = %v, want %v", err, tt.wantErr)
			}
		})
	}
	if got, err := s.CreateRefund(ctx, pendingRefund(t, p.ID, "r1", eur(999))); err != nil || !cmp.Equal(first, got) {
		t.Errorf("CreateRefund with a taken key = %+v, %v; want the first refund", got, err)
	}
	if _, err := s.RefundByKey(ctx, "r2"); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("RefundByKey(refused refund) = %v, want ErrNotFound: nothing stored", err)
	}

	withRefunds, err := s.Payment(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range withRefunds.Refunds {
		keys = append(keys, r.IdempotencyKey)
	}
	if diff := cmp.Diff([]string{"r1", "r3"}, keys); diff != "" {
		t.Errorf("payment's refunds, oldest first (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(p.UpdatedAt, withRefunds.UpdatedAt); diff != "" {
		t.Errorf("refunds changed the payment's UpdatedAt (-want +got):\n%s", diff)
	}
}

func testSettleRefund(t *testing.T, s payment.Store) {
	ctx := t.Context()
	p := captured(t, s, "paid", eur(1000))
	settledAt := created.Add(time.Minute)

	r, err := s.CreateRefund(ctx, pendingRefund(t, p.ID, "ok", eur(300)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.SettleRefund(ctx, r.ID, payment.Outcome{Succeeded: true, PSPReference: "re_1", At: settledAt})
	if err != nil {
		t.Fatal(err)
	}
	want := r
	want.Status, want.PSPReference, want.UpdatedAt = payment.RefundSucceeded, "re_1", settledAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SettleRefund succeeded (-want +got):\n%s", diff)
	}

	// A failed refund gives its amount back; settling it twice gives nothing more.
	r, err = s.CreateRefund(ctx, pendingRefund(t, p.ID, "fails", eur(700)))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err = s.SettleRefund(ctx, r.ID, payment.Outcome{FailureReason: "not refunded", At: settledAt})
		if err != nil {
			t.Fatal(err)
		}
	}
	want = r
	want.Status, want.FailureReason, want.UpdatedAt = payment.RefundFailed, "not refunded", settledAt
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SettleRefund failed (-want +got):\n%s", diff)
	}
	if _, err := s.CreateRefund(ctx, pendingRefund(t, p.ID, "again", eur(700))); err != nil {
		t.Errorf("refunding the amount of a failed refund = %v, want it available again", err)
	}
	if _, err := s.CreateRefund(ctx, pendingRefund(t, p.ID, "over", eur(1))); !errors.Is(err, payment.ErrRefundExceedsPayment) {
		t.Errorf("refund beyond the total = %v, want ErrRefundExceedsPayment (released once only)", err)
	}
	if _, err := s.SettleRefund(ctx, newID(t), payment.Outcome{Succeeded: true, PSPReference: "re", At: settledAt}); !errors.Is(err, payment.ErrNotFound) {
		t.Errorf("SettleRefund(unknown) = %v, want ErrNotFound", err)
	}
}

// workers is how many goroutines the concurrency checks run at once.
const workers = 20

func testConcurrentPayments(t *testing.T, s payment.Store) {
	ids := make([]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			p, err := s.CreatePayment(t.Context(), pending(t, "order", "same", eur(100)))
			if err != nil {
				t.Errorf("CreatePayment: %v", err)
				return
			}
			ids[i] = p.ID
		})
	}
	wg.Wait()
	ps, err := s.PaymentsOfOrder(t.Context(), "order", "", workers+1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 {
		t.Fatalf("stored %d payments under one key, want 1", len(ps))
	}
	for i, id := range ids {
		if id != ps[0].ID {
			t.Errorf("worker %d got payment %q, want the stored %q", i, id, ps[0].ID)
		}
	}
}

func testConcurrentSettlements(t *testing.T, s payment.Store) {
	p, err := s.CreatePayment(t.Context(), pending(t, "order", "race", eur(100)))
	if err != nil {
		t.Fatal(err)
	}
	results := make([]payment.Payment, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			o := payment.Outcome{Succeeded: i%2 == 0, PSPReference: fmt.Sprint("ch_", i), At: created.Add(time.Duration(i) * time.Second)}
			got, err := s.SettlePayment(t.Context(), p.ID, o)
			if err != nil {
				t.Errorf("SettlePayment: %v", err)
			}
			results[i] = got
		})
	}
	wg.Wait()
	final, err := s.Payment(t.Context(), p.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, got := range results {
		if diff := cmp.Diff(final, got); diff != "" {
			t.Errorf("worker %d saw another outcome than the one stored (-stored +got):\n%s", i, diff)
		}
	}
}

func testConcurrentRefunds(t *testing.T, s payment.Store) {
	p := captured(t, s, "paid", eur(1000))

	// 20 refunds of 100 against 1000: exactly 10 fit.
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			_, errs[i] = s.CreateRefund(t.Context(), pendingRefund(t, p.ID, fmt.Sprint("r", i), eur(100)))
		})
	}
	wg.Wait()
	count := map[string]int{}
	for _, err := range errs {
		switch {
		case err == nil:
			count["created"]++
		case errors.Is(err, payment.ErrRefundExceedsPayment):
			count["exceeds"]++
		default:
			t.Errorf("CreateRefund: %v", err)
		}
	}
	if diff := cmp.Diff(map[string]int{"created": 10, "exceeds": 10}, count); diff != "" {
		t.Errorf("outcomes (-want +got):\n%s", diff)
	}

	// The same key many times at once: one refund, returned to everyone,
	// even though a second one would not fit.
	q := captured(t, s, "paid-2", eur(1000))
	ids := make([]string, workers)
	for i := range workers {
		wg.Go(func() {
			r, err := s.CreateRefund(t.Context(), pendingRefund(t, q.ID, "same", eur(1000)))
			if err != nil {
				t.Errorf("CreateRefund with one key: %v", err)
			}
			ids[i] = r.ID
		})
	}
	wg.Wait()
	q, err := s.Payment(t.Context(), q.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Refunds) != 1 {
		t.Fatalf("stored %d refunds under one key, want 1", len(q.Refunds))
	}
	for i, id := range ids {
		if id != q.Refunds[0].ID {
			t.Errorf("worker %d got refund %q, want %q", i, id, q.Refunds[0].ID)
		}
	}
}
