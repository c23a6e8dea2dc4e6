// Package money represents amounts of money as integer minor units (cents)
// of an ISO 4217 currency. Never floats: 0.1 + 0.2 is not 0.3 in binary.
//
// Arithmetic is checked: adding different currencies or overflowing int64
// returns an error instead of a wrong total.
package money

import (
	"errors"
	"fmt"
	"math"
)

// Errors returned by the arithmetic.
var (
	ErrCurrencyMismatch = errors.New("currencies differ")
	ErrOverflow         = errors.New("amount overflows")
	ErrInvalidCurrency  = errors.New("currency is not an ISO 4217 code (three capital letters)")
)

// Amount is Minor units of Currency, e.g. {Minor: 1999, Currency: "EUR"} is
// €19.99. The zero value has no currency; it is the identity of Add.
type Amount struct {
	// Minor is the amount in the currency's minor unit; may be negative.
	Minor int64 `json:"amount"`
	// Currency is the ISO 4217 code, e.g. "EUR".
	Currency string `json:"currency"`
}

// ValidCurrency reports whether code looks like an ISO 4217 code.
func ValidCurrency(code string) bool {
	if len(code) != 3 {
		return false
	}
	for _, r := range code {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// Add returns a + b. Adding to a zero Amount takes b's currency.
func (a Amount) Add(b Amount) (Amount, error) {
	if a.Currency == "" && a.Minor == 0 {
		return b, nil
	}
	if a.Currency != b.Currency {
		return Amount{}, fmt.Errorf("add %s to %s: %w", b.Currency, a.Currency, ErrCurrencyMismatch)
	}
	if (b.Minor > 0 && a.Minor > math.MaxInt64-b.Minor) || (b.Minor < 0 && a.Minor < math.MinInt64-b.Minor) {
		return Amount{}, fmt.Errorf("add %d to %d: %w", b.Minor, a.Minor, ErrOverflow)
	}
	return Amount{Minor: a.Minor + b.Minor, Currency: a.Currency}, nil
}

// Mul returns a × n, for a line's quantity times its unit price.
func (a Amount) Mul(n int64) (Amount, error) {
	if a.Minor != 0 && n != 0 {
		p := a.Minor * n
		if p/n != a.Minor || (a.Minor == -1 && n == math.MinInt64) || (n == -1 && a.Minor == math.MinInt64) {
			return Amount{}, fmt.Errorf("multiply %d by %d: %w", a.Minor, n, ErrOverflow)
		}
		return Amount{Minor: p, Currency: a.Currency}, nil
	}
	return Amount{Minor: 0, Currency: a.Currency}, nil
}

// String formats a as "1999 EUR" (minor units and code): exact, and free of
// assumptions about each currency's number of decimals.
func (a Amount) String() string { return fmt.Sprintf("%d %s", a.Minor, a.Currency) }
