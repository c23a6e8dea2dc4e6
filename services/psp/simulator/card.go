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
