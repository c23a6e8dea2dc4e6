package simulator

// Test cards. Any other card number that passes validation succeeds.
const (
	// CardSucceeds is always charged.
	CardSucceeds = "4242424242424242"
	// CardDeclined is declined with code "card_declined".
	CardDeclined = "4000000000000002"
	// CardInsufficientFunds is declined with code "insufficient_funds".
	CardInsufficientFunds = "4000000000009995"
	// CardHangs is charged (the charge is recorded as succeeded) but the
	// response is held for Settings.Hang or until the client goes away: the
	// ambiguous timeout a client must settle by looking the charge up.
	CardHangs = "4000000000000259"
)

// declineCode returns why a card is declined, or "" if it is not.
func declineCode(card string) string {
	switch card {
	case CardDeclined:
		return "card_declined"
	case CardInsufficientFunds:
		return "insufficient_funds"
	default:
		return ""
	}
}

// validCardNumber reports whether n is 12 to 19 digits passing the Luhn
// checksum, which catches any single mistyped digit.
func validCardNumber(n string) bool {
	if len(n) < 12 || len(n) > 19 {
		return false
	}
	sum := 0
	double := false
	for i := len(n) - 1; i >= 0; i-- {
		d := int(n[i]) - '0'
		if d < 0 || d > 9 {
			return false
		}
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}
