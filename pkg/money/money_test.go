package money_test

import (
	"errors"
	"math"
	"testing"

	"github.com/microshop/microshop/pkg/money"
)

func eur(minor int64) money.Amount { return money.Amount{Minor: minor, Currency: "EUR"} }

func TestAdd(t *testing.T) {
	tests := []struct {
		name    string
		a, b    money.Amount
		want    money.Amount
		wantErr error
	}{
		{"same currency", eur(150), eur(250), eur(400), nil},
		{"zero takes the other currency", money.Amount{}, eur(5), eur(5), nil},
		{"negative", eur(100), eur(-300), eur(-200), nil},
		{"mismatch", eur(1), money.Amount{Minor: 1, Currency: "USD"}, money.Amount{}, money.ErrCurrencyMismatch},
		{"overflow", eur(math.MaxInt64), eur(1), money.Amount{}, money.ErrOverflow},
		{"underflow", eur(math.MinInt64), eur(-1), money.Amount{}, money.ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.Add(tt.b)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("%v.Add(%v) = %v, %v; want %v, %v", tt.a, tt.b, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestMul(t *testing.T) {
	tests := []struct {
		name    string
		a       money.Amount
		n       int64
		want    money.Amount
		wantErr error
	}{
		{"quantity", eur(1999), 3, eur(5997), nil},
		{"zero quantity", eur(1999), 0, eur(0), nil},
		{"zero price", eur(0), math.MaxInt64, eur(0), nil},
		{"overflow", eur(math.MaxInt64 / 2), 3, money.Amount{}, money.ErrOverflow},
		{"min times minus one", eur(math.MinInt64), -1, money.Amount{}, money.ErrOverflow},
		{"minus one times min", eur(-1), math.MinInt64, money.Amount{}, money.ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.a.Mul(tt.n)
			if !errors.Is(err, tt.wantErr) || got != tt.want {
				t.Errorf("%v.Mul(%d) = %v, %v; want %v, %v", tt.a, tt.n, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestValidCurrency(t *testing.T) {
	tests := map[string]bool{"EUR": true, "USD": true, "eur": false, "EU": false, "EURO": false, "": false, "E1R": false, "ÉUR": false}
	for code, want := range tests {
		if got := money.ValidCurrency(code); got != want {
			t.Errorf("ValidCurrency(%q) = %v, want %v", code, got, want)
		}
	}
}

func FuzzAddMul(f *testing.F) {
	f.Add(int64(1), int64(2))
	f.Add(int64(math.MaxInt64), int64(-1))
	f.Fuzz(func(t *testing.T, a, b int64) {
		// Whatever the inputs, a result without an error is the exact
		// answer: undoing the operation gives back the input.
		if got, err := eur(a).Add(eur(b)); err == nil && got.Minor-b != a {
			t.Errorf("Add(%d, %d) = %d, not exact", a, b, got.Minor)
		}
		if got, err := eur(a).Mul(b); err == nil && b != 0 && got.Minor/b != a {
			t.Errorf("Mul(%d, %d) = %d, not exact", a, b, got.Minor)
		}
	})
}
