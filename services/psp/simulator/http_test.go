package simulator_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/microshop/microshop/services/psp/simulator"
)

var ignoreIDs = cmp.Options{
	cmpopts.IgnoreFields(simulator.Charge{}, "ID"),
	cmpopts.IgnoreFields(simulator.Refund{}, "ID"),
}

func TestCreateCharge(t *testing.T) {
	tests := []struct {
		name string
		key  string
		body string
		want simulator.Charge
	}{
		{name: "succeeds", key: "k", body: chargeBody(1999, simulator.CardSucceeds),
			want: simulator.Charge{Status: "succeeded", Amount: 1999, Currency: "EUR", IdempotencyKey: "k", CreatedAt: epoch}},
		{name: "any other valid card succeeds", key: "k", body: chargeBody(1, "5555555555554444"),
			want: simulator.Charge{Status: "succeeded", Amount: 1, Currency: "EUR", IdempotencyKey: "k", CreatedAt: epoch}},
		{name: "declined", key: "k", body: chargeBody(500, simulator.CardDeclined),
			want: simulator.Charge{Status: "declined", DeclineCode: "card_declined", Amount: 500, Currency: "EUR", IdempotencyKey: "k", CreatedAt: epoch}},
		{name: "insufficient funds", key: "k", body: chargeBody(500, simulator.CardInsufficientFunds),
			want: simulator.Charge{Status: "declined", DeclineCode: "insufficient_funds", Amount: 500, Currency: "EUR", IdempotencyKey: "k", CreatedAt: epoch}},
		{name: "12 digits", key: "k", body: chargeBody(7, "424242424242"),
			want: simulator.Charge{Status: "succeeded", Amount: 7, Currency: "EUR", IdempotencyKey: "k", CreatedAt: epoch}},
		{name: "19 digits", key: "k", body: chargeBody(7, "4242424242424242428"),
			want: simulator.Charge{Status: "succeeded", Amount: 7, Currency: "EUR", IdempotencyKey: "k", CreatedAt: epoch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSimulator(simulator.Settings{})
			rec := call{method: http.MethodPost, target: "/v1/charges", key: tt.key, body: tt.body}.do(sim.Handler())
			got := decode[simulator.Charge](t, rec, http.StatusCreated)
			if diff := cmp.Diff(tt.want, got, ignoreIDs); diff != "" {
				t.Errorf("charge (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(got.ID, "ch_") {
				t.Errorf("id = %q, want a ch_ prefix", got.ID)
			}
			if diff := cmp.Diff([]simulator.Charge{got}, sim.Charges()); diff != "" {
				t.Errorf("recorded charges (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateChargeRefused(t *testing.T) {
	tests := []struct {
		name        string
		key         string
		contentType string
		body        string
		wantStatus  int
		wantFields  []string
	}{
		{name: "luhn fails", key: "k", body: chargeBody(1, "4242424242424241"), wantStatus: 422, wantFields: []string{"card_number"}},
		{name: "11 digits", key: "k", body: chargeBody(1, "42424242426"), wantStatus: 422, wantFields: []string{"card_number"}},
		{name: "20 digits", key: "k", body: chargeBody(1, "42424242424242424284"), wantStatus: 422, wantFields: []string{"card_number"}},
		{name: "spaces", key: "k", body: chargeBody(1, "4242 4242 4242 4242"), wantStatus: 422, wantFields: []string{"card_number"}},
		{name: "zero amount", key: "k", body: chargeBody(0, simulator.CardSucceeds), wantStatus: 422, wantFields: []string{"amount"}},
		{name: "negative amount", key: "k", body: chargeBody(-5, simulator.CardSucceeds), wantStatus: 422, wantFields: []string{"amount"}},
		{name: "lower-case currency", key: "k", body: `{"amount":1,"currency":"eur","card_number":"4242424242424242"}`, wantStatus: 422, wantFields: []string{"currency"}},
		{name: "empty body object", key: "k", body: `{}`, wantStatus: 422, wantFields: []string{"amount", "currency", "card_number"}},
		{name: "amount is a string", key: "k", body: `{"amount":"1"}`, wantStatus: 422, wantFields: []string{"amount"}},
		{name: "unknown field", key: "k", body: `{"amount":1,"cvc":"123"}`, wantStatus: 422, wantFields: []string{"cvc"}},
		{name: "malformed", key: "k", body: `{"amount":`, wantStatus: 400},
		{name: "not json", key: "k", contentType: "text/plain", body: `amount=1`, wantStatus: 415},
		{name: "no idempotency key", body: chargeBody(1, simulator.CardSucceeds), wantStatus: 400, wantFields: []string{"Idempotency-Key"}},
		{name: "idempotency key too long", key: strings.Repeat("k", 256), body: chargeBody(1, simulator.CardSucceeds), wantStatus: 400, wantFields: []string{"Idempotency-Key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim := newSimulator(simulator.Settings{})
			rec := call{method: http.MethodPost, target: "/v1/charges", key: tt.key, contentType: tt.contentType, body: tt.body}.do(sim.Handler())
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if diff := cmp.Diff(tt.wantFields, problemFields(t, rec)); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
			if got := sim.Charges(); len(got) != 0 {
				t.Errorf("charges after a refused request = %v, want none", got)
			}
		})
	}
}

func TestChargeIdempotency(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	h := sim.Handler()
	first := decode[simulator.Charge](t, postCharge("order-1", 1000, simulator.CardSucceeds).do(h), http.StatusCreated)

	t.Run("same key and body replays the charge", func(t *testing.T) {
		rec := postCharge("order-1", 1000, simulator.CardSucceeds).do(h)
		if diff := cmp.Diff(first, decode[simulator.Charge](t, rec, http.StatusOK)); diff != "" {
			t.Errorf("replayed charge (-first +replay):\n%s", diff)
		}
		if got := rec.Header().Get("Idempotent-Replayed"); got != "true" {
			t.Errorf("Idempotent-Replayed = %q, want true", got)
		}
	})
	conflicts := []struct {
		name string
		call call
	}{
		{"other amount", postCharge("order-1", 1001, simulator.CardSucceeds)},
		{"other card", postCharge("order-1", 1000, "5555555555554444")},
		{"other currency", call{method: http.MethodPost, target: "/v1/charges", key: "order-1", body: `{"amount":1000,"currency":"USD","card_number":"4242424242424242"}`}},
	}
	for _, tt := range conflicts {
		t.Run("same key, "+tt.name+": 409", func(t *testing.T) {
			rec := tt.call.do(h)
			if rec.Code != http.StatusConflict {
				t.Fatalf("status = %d, want 409; body %s", rec.Code, rec.Body)
			}
			problemFields(t, rec)
		})
	}
	t.Run("a declined charge replays as declined", func(t *testing.T) {
		declined := decode[simulator.Charge](t, postCharge("order-2", 1000, simulator.CardDeclined).do(h), http.StatusCreated)
		replay := decode[simulator.Charge](t, postCharge("order-2", 1000, simulator.CardDeclined).do(h), http.StatusOK)
		if diff := cmp.Diff(declined, replay); diff != "" {
			t.Errorf("replay (-first +replay):\n%s", diff)
		}
	})
	if got := len(sim.Charges()); got != 2 {
		t.Errorf("charges recorded = %d, want 2 (one per key)", got)
	}
}

func TestConcurrentChargesWithOneKeyChargeOnce(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	h := sim.Handler()
	const n = 50
	codes := make([]int, n)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			rec := postCharge("same", 1000, simulator.CardSucceeds).do(h)
			codes[i] = rec.Code
			if rec.Code == http.StatusOK || rec.Code == http.StatusCreated {
				ids[i] = decode[simulator.Charge](t, rec, rec.Code).ID
			}
		})
	}
	wg.Wait()

	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if diff := cmp.Diff(map[int]int{http.StatusCreated: 1, http.StatusOK: n - 1}, count); diff != "" {
		t.Errorf("status counts (-want +got):\n%s", diff)
	}
	charges := sim.Charges()
	if len(charges) != 1 {
		t.Fatalf("charges = %d, want exactly 1", len(charges))
	}
	for i, id := range ids {
		if id != charges[0].ID {
			t.Errorf("request %d got charge %q, want %q", i, id, charges[0].ID)
		}
	}
}

func TestGetChargeByKey(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	want, _, err := sim.Charge("known", simulator.ChargeRequest{Amount: 300, Currency: "EUR", CardNumber: simulator.CardSucceeds})
	if err != nil {
		t.Fatal(err)
	}
	rec := call{method: http.MethodGet, target: "/v1/charges?idempotency_key=known"}.do(sim.Handler())
	if diff := cmp.Diff(want, decode[simulator.Charge](t, rec, http.StatusOK)); diff != "" {
		t.Errorf("charge (-want +got):\n%s", diff)
	}
}

func TestGetChargeByKeyRefused(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	if _, _, err := sim.Charge("known", simulator.ChargeRequest{Amount: 300, Currency: "EUR", CardNumber: simulator.CardSucceeds}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		target     string
		wantStatus int
		wantFields []string
	}{
		{"unknown key", "/v1/charges?idempotency_key=unknown", 404, nil},
		{"no key", "/v1/charges", 400, []string{"idempotency_key"}},
		{"empty key", "/v1/charges?idempotency_key=", 400, []string{"idempotency_key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := call{method: http.MethodGet, target: tt.target}.do(sim.Handler())
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantFields, problemFields(t, rec)); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
		})
	}
}

// chargedAndDeclined returns a simulator holding a charge of 1000 EUR that
// succeeded and one that was declined.
func chargedAndDeclined(t *testing.T) (sim *simulator.Simulator, charged, declined simulator.Charge) {
	t.Helper()
	sim = newSimulator(simulator.Settings{})
	charged, _, err := sim.Charge("c", simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardSucceeds})
	if err != nil {
		t.Fatal(err)
	}
	declined, _, err = sim.Charge("d", simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardDeclined})
	if err != nil {
		t.Fatal(err)
	}
	return sim, charged, declined
}

func TestCreateRefund(t *testing.T) {
	tests := []struct {
		name   string
		amount int64
		want   simulator.Refund // ChargeID filled in
	}{
		{name: "part", amount: 400, want: simulator.Refund{Status: "succeeded", Amount: 400, Currency: "EUR", IdempotencyKey: "r", CreatedAt: epoch}},
		{name: "all", amount: 1000, want: simulator.Refund{Status: "succeeded", Amount: 1000, Currency: "EUR", IdempotencyKey: "r", CreatedAt: epoch}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, charged, _ := chargedAndDeclined(t)
			got := decode[simulator.Refund](t, postRefund("r", charged.ID, tt.amount).do(sim.Handler()), http.StatusCreated)
			tt.want.ChargeID = charged.ID
			if diff := cmp.Diff(tt.want, got, ignoreIDs); diff != "" {
				t.Errorf("refund (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(got.ID, "re_") {
				t.Errorf("id = %q, want a re_ prefix", got.ID)
			}
		})
	}
}

func TestCreateRefundRefused(t *testing.T) {
	tests := []struct {
		name       string
		call       func(charged, declined string) call
		wantStatus int
		wantFields []string
	}{
		{name: "more than charged", call: func(c, _ string) call { return postRefund("r", c, 1001) }, wantStatus: 422, wantFields: []string{"amount"}},
		{name: "unknown charge", call: func(string, string) call { return postRefund("r", "ch_nope", 1) }, wantStatus: 404},
		{name: "declined charge", call: func(_, d string) call { return postRefund("r", d, 1) }, wantStatus: 422, wantFields: []string{"charge_id"}},
		{name: "zero amount", call: func(c, _ string) call { return postRefund("r", c, 0) }, wantStatus: 422, wantFields: []string{"amount"}},
		{name: "no charge id", call: func(string, string) call { return postRefund("r", "", 1) }, wantStatus: 422, wantFields: []string{"charge_id"}},
		{name: "no idempotency key", call: func(c, _ string) call { return postRefund("", c, 1) }, wantStatus: 400, wantFields: []string{"Idempotency-Key"}},
		{name: "unknown field", call: func(string, string) call {
			return call{method: http.MethodPost, target: "/v1/refunds", key: "r", body: `{"charge":"x"}`}
		}, wantStatus: 422, wantFields: []string{"charge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sim, charged, declined := chargedAndDeclined(t)
			rec := tt.call(charged.ID, declined.ID).do(sim.Handler())
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if diff := cmp.Diff(tt.wantFields, problemFields(t, rec)); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
			if got := sim.Refunds(); len(got) != 0 {
				t.Errorf("refunds after a refused request = %v, want none", got)
			}
		})
	}
}

func TestRefundLimitsAndIdempotency(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	h := sim.Handler()
	charge, _, err := sim.Charge("c", simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardSucceeds})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		call       call
		wantStatus int
	}{
		{"refund 600", postRefund("r1", charge.ID, 600), 201},
		{"500 more is too much", postRefund("r2", charge.ID, 500), 422},
		{"400 more is exactly the rest", postRefund("r3", charge.ID, 400), 201},
		{"1 more is too much", postRefund("r4", charge.ID, 1), 422},
		{"replaying the first still answers", postRefund("r1", charge.ID, 600), 200},
		{"reusing a key with another amount conflicts", postRefund("r1", charge.ID, 100), 409},
	}
	for _, s := range steps {
		rec := s.call.do(h)
		if rec.Code != s.wantStatus {
			t.Fatalf("%s: status = %d, want %d; body %s", s.name, rec.Code, s.wantStatus, rec.Body)
		}
	}
	var total int64
	for _, r := range sim.Refunds() {
		total += r.Amount
	}
	if total != 1000 {
		t.Errorf("refunded in total %d, want 1000", total)
	}

	t.Run("lookup by key", func(t *testing.T) {
		want, err := sim.RefundByKey("r1")
		if err != nil {
			t.Fatal(err)
		}
		got := decode[simulator.Refund](t, call{method: http.MethodGet, target: "/v1/refunds?idempotency_key=r1"}.do(h), http.StatusOK)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("refund (-want +got):\n%s", diff)
		}
		for target, status := range map[string]int{"/v1/refunds?idempotency_key=r2": 404, "/v1/refunds": 400} {
			rec := call{method: http.MethodGet, target: target}.do(h)
			if rec.Code != status {
				t.Errorf("GET %s = %d, want %d", target, rec.Code, status)
			}
			problemFields(t, rec)
		}
	})
}

func TestConcurrentRefundsNeverExceedTheCharge(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	h := sim.Handler()
	charge, _, err := sim.Charge("c", simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardSucceeds})
	if err != nil {
		t.Fatal(err)
	}
	const n = 20 // 20 refunds of 100 against a charge of 1000
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { codes[i] = postRefund(fmt.Sprint("r", i), charge.ID, 100).do(h).Code })
	}
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	if diff := cmp.Diff(map[int]int{http.StatusCreated: 10, http.StatusUnprocessableEntity: 10}, count); diff != "" {
		t.Errorf("status counts (-want +got):\n%s", diff)
	}
	if got := len(sim.Refunds()); got != 10 {
		t.Errorf("refunds recorded = %d, want 10", got)
	}
}

func TestAdminListings(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	h := sim.Handler()
	type items[T any] struct{ Items []T }
	if got := decode[items[simulator.Charge]](t, call{method: http.MethodGet, target: "/v1/admin/charges"}.do(h), http.StatusOK); len(got.Items) != 0 {
		t.Errorf("charges of a new simulator = %v, want none", got.Items)
	}
	ok := decode[simulator.Charge](t, postCharge("k1", 500, simulator.CardSucceeds).do(h), http.StatusCreated)
	declined := decode[simulator.Charge](t, postCharge("k2", 700, "4000000000000002").do(h), http.StatusCreated)
	postCharge("k1", 500, simulator.CardSucceeds).do(h) // a replay adds nothing
	refund := decode[simulator.Refund](t, postRefund("r1", ok.ID, 200).do(h), http.StatusCreated)

	charges := decode[items[simulator.Charge]](t, call{method: http.MethodGet, target: "/v1/admin/charges"}.do(h), http.StatusOK)
	if diff := cmp.Diff([]simulator.Charge{ok, declined}, charges.Items); diff != "" {
		t.Errorf("charges (-want +got):\n%s", diff)
	}
	refunds := decode[items[simulator.Refund]](t, call{method: http.MethodGet, target: "/v1/admin/refunds"}.do(h), http.StatusOK)
	if diff := cmp.Diff([]simulator.Refund{refund}, refunds.Items); diff != "" {
		t.Errorf("refunds (-want +got):\n%s", diff)
	}
}
