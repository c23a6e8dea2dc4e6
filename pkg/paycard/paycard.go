// Package paycard checks payment card numbers before they travel anywhere.
//
// microshop only ever handles the payment provider simulator's test cards; a
// real shop would never see a card number at all, only a token from its
// payment provider's own form. The check still matters: it turns a mistyped
// number into a 422 at the edge instead of a declined saga.
package paycard

// Valid reports whether n is 12 to 19 ASCII digits passing the Luhn checksum,
// which catches any single mistyped digit and most swapped pairs.
func Valid(n string) bool {
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

// Last4 returns the last four digits of a valid number, the only part that
// may be shown or logged; it returns "" for anything shorter.
func Last4(n string) string {
	if len(n) < 4 {
		return ""
	}
	return n[len(n)-4:]
}
