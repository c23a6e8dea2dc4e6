package simulator

import "testing"

func TestValidCardNumber(t *testing.T) {
	tests := []struct {
		number string
		want   bool
	}{
		{CardSucceeds, true},
		{CardDeclined, true},
		{CardInsufficientFunds, true},
		{CardHangs, true},
		{"5555555555554444", true},
		{"424242424242", true},        // 12 digits, the shortest
		{"4242424242424242428", true}, // 19 digits, the longest
		{"4242424242424241", false},   // one digit off
		{"42424242426", false},        // 11 digits
		{"42424242424242424284", false},
		{"4242 4242 4242 4242", false},
		{"424242424242424a", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := validCardNumber(tt.number); got != tt.want {
			t.Errorf("validCardNumber(%q) = %v, want %v", tt.number, got, tt.want)
		}
	}
}
