package paycard_test

import (
	"testing"

	"github.com/microshop/microshop/pkg/paycard"
)

func TestValid(t *testing.T) {
	tests := map[string]bool{
		"4242424242424242":     true, // the simulator's succeeding card
		"4000000000000002":     true, // declines, but is a valid number
		"4000000000000259":     true, // hangs
		"4000000000009995":     true, // insufficient funds
		"5555555555554444":     true,
		"4242424242424242428":  true,  // 19 digits, the longest
		"42424242424242424284": false, // 20 digits
		"42424242426":          false, // 11 digits
		"424242424242424a":     false,
		"4242424242424241":     false, // one digit off
		"2424242424242424":     false, // not Luhn
		"424242424242":         true,  // 12 digits, valid checksum
		"424242424241":         false, // 12 digits, bad checksum
		"000000000000":         true,  // 12 zeros pass Luhn
		"00000000000":          false, // 11 digits
		"00000000000000000000": false, // 20 digits
		"4242 4242 4242 4242":  false, // spaces are not digits
		"42424242424242a2":     false,
		"":                     false,
		"٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢":     false, // Arabic-Indic digits
	}
	for n, want := range tests {
		if got := paycard.Valid(n); got != want {
			t.Errorf("Valid(%q) = %v, want %v", n, got, want)
		}
	}
}

func TestLast4(t *testing.T) {
	tests := map[string]string{"4242424242424242": "4242", "4000000000000259": "0259", "123": ""}
	for n, want := range tests {
		if got := paycard.Last4(n); got != want {
			t.Errorf("Last4(%q) = %q, want %q", n, got, want)
		}
	}
}

func FuzzValid(f *testing.F) {
	f.Add("4242424242424242")
	f.Fuzz(func(t *testing.T, n string) {
		if paycard.Valid(n) && (len(n) < 12 || len(n) > 19) {
			t.Fatalf("Valid(%q) accepted a number of length %d", n, len(n))
		}
	})
}
