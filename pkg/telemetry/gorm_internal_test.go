package telemetry

import "testing"

// TestFirstWord checks the operation read from a statement's text: the
// first word, lower case, after blanks, semicolons and comments.
func TestFirstWord(t *testing.T) {
	for _, tt := range []struct{ query, want string }{
		{"SELECT 1", "select"},
		{"\n\t\tINSERT INTO outbox (id) VALUES ($1)", "insert"},
		{"WITH heads AS MATERIALIZED (SELECT 1) SELECT 2", "with"},
		{";; update t SET a = 1", "update"},
		{"/* a comment */ DELETE FROM t", "delete"},
		{"-- a line comment\n  -- and another\nSELECT 1", "select"},
		{"/* one */ /* two */\nbegin", "begin"},
		{"SELECT_ME(1)", "select_me"},
		{"(SELECT 1)", ""},
		{"", ""},
		{"/* never closed", ""},
		{"-- no new line", ""},
	} {
		if got := firstWord(tt.query); got != tt.want {
			t.Errorf("firstWord(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
}
