package invariants

import (
	"encoding/base64"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPlanMix: the order mix follows the brief's proportions, within a few
// points over 10,000 orders, and each order's plan depends only on the seed
// and its number.
func TestPlanMix(t *testing.T) {
	plenty, low := []string{"A", "B"}, []string{"LOW"}
	const n = 10000
	counts := map[string]int{}
	for i := range n {
		c := plan(42, i, plenty, low)
		switch {
		case c.sku == "LOW":
			counts["low stock"]++
		default:
			counts[c.card]++
		}
	}
	for kind, want := range map[string]float64{
		cardSucceeds: 0.70, cardDeclined: 0.10, cardInsufficient: 0.05, cardHangs: 0.05, "low stock": 0.10,
	} {
		if got := float64(counts[kind]) / n; got < want-0.02 || got > want+0.02 {
			t.Errorf("share of %s = %.3f, want %.2f ± 0.02", kind, got, want)
		}
	}
	if diff := cmp.Diff(plan(42, 17, plenty, low), plan(42, 17, plenty, low), cmp.AllowUnexported(Checkout{})); diff != "" {
		t.Errorf("the same seed and number planned different orders:\n%s", diff)
	}
}

func TestReasonClass(t *testing.T) {
	for reason, want := range map[string]string{
		"reserve-stock: insufficient stock of MUG-ENAMEL: 1 requested, 0 available": "reserve-stock: insufficient stock",
		"reserve-stock: timed out":           "reserve-stock: timed out",
		"charge-payment: card_declined":      "charge-payment: card_declined",
		"charge-payment: rejected: bad card": "charge-payment: rejected",
		"":                                   "(no reason)",
	} {
		if got := reasonClass(reason); got != want {
			t.Errorf("reasonClass(%q) = %q, want %q", reason, got, want)
		}
	}
}

func TestTokenSubject(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"cus_alice","role":"customer"}`))
	tests := []struct {
		name, token, want string
		wantErr           bool
	}{
		{"subject", "h." + payload + ".s", "cus_alice", false},
		{"not a JWT", "abc", "", true},
		{"no subject", "h." + base64.RawURLEncoding.EncodeToString([]byte(`{}`)) + ".s", "", true},
		{"not base64", "h.!!!.s", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tokenSubject(tt.token)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("tokenSubject(%q) = %q, %v; want %q, error %t", tt.token, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
