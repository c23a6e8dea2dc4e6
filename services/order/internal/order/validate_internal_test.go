package order

import (
	"testing"

	"github.com/microshop/microshop/pkg/money"
)

func TestRequestHashFingerprintsTheMeaning(t *testing.T) {
	eur := func(minor int64) money.Amount { return money.Amount{Minor: minor, Currency: "EUR"} }
	key := []byte("a key of the fingerprint, 32 b.")
	base := CreateRequest{CustomerID: "alice", IdempotencyKey: "k", CardNumber: "4242424242424242",
		Lines: []Line{{SKU: "MUG", Quantity: 2, UnitPrice: eur(1250)}, {SKU: "CAP", Quantity: 1, UnitPrice: eur(900)}}}
	with := func(change func(*CreateRequest)) CreateRequest {
		r := base
		r.Lines = append([]Line(nil), base.Lines...)
		change(&r)
		return r
	}
	tests := []struct {
		name     string
		req      CreateRequest
		key      []byte
		wantSame bool
	}{
		{"same request", base, key, true},
		{"lines in another order", with(func(r *CreateRequest) { r.Lines[0], r.Lines[1] = r.Lines[1], r.Lines[0] }), key, true},
		{"new prices", with(func(r *CreateRequest) { r.Lines[0].UnitPrice = eur(1300) }), key, true},
		{"another idempotency key (compared apart)", with(func(r *CreateRequest) { r.IdempotencyKey = "k2" }), key, true},
		{"another card", with(func(r *CreateRequest) { r.CardNumber = "4000000000000002" }), key, false},
		{"same card, another HMAC key", base, []byte("another key of the fingerprint."), false},
		{"another quantity", with(func(r *CreateRequest) { r.Lines[1].Quantity = 2 }), key, false},
		{"a line fewer", with(func(r *CreateRequest) { r.Lines = r.Lines[:1] }), key, false},
		{"another customer", with(func(r *CreateRequest) { r.CustomerID = "bob" }), key, false},
		{"SKU and quantity shifted between lines", with(func(r *CreateRequest) {
			r.Lines = []Line{{SKU: "MUG", Quantity: 2}, {SKU: "CAPX", Quantity: 1}}
		}), key, false},
	}
	want := requestHash(key, base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := requestHash(tt.key, tt.req)
			if (got == want) != tt.wantSame {
				t.Errorf("requestHash = %s, base %s; want equal: %v", got, want, tt.wantSame)
			}
		})
	}
}
