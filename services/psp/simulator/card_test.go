package simulator

import (
	"testing"

	"github.com/microshop/microshop/pkg/paycard"
)

// TestCardsAreValid: the test cards pass the check the simulator applies to
// every charge (numbers failing it are refused with a 422; see
// http_test.go), so each reaches the behaviour it is named for.
func TestCardsAreValid(t *testing.T) {
	for _, card := range []string{CardSucceeds, CardDeclined, CardInsufficientFunds, CardHangs} {
		if !paycard.Valid(card) {
			t.Errorf("paycard.Valid(%q) = false, want true", card)
		}
	}
}
