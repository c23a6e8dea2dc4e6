package order

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func TestCursorRoundTrip(t *testing.T) {
	tests := []Cursor{
		{CreatedAt: time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: "01a1fe98-4ebc-7ab1-a444-e13141094433"},
		{CreatedAt: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), ID: "00000000-0000-0000-0000-000000000000"},
		{CreatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), ID: "ffffffff-ffff-ffff-ffff-ffffffffffff"},
	}
	for _, want := range tests {
		got, err := parseCursor(want.encode())
		if err != nil || !got.CreatedAt.Equal(want.CreatedAt) || got.ID != want.ID {
			t.Errorf("parseCursor(encode(%v)) = %v, %v; want it back", want, got, err)
		}
	}
}

func TestParseCursorRefuses(t *testing.T) {
	const id = "01a1fe98-4ebc-7ab1-a444-e13141094433"
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct{ name, token string }{
		{"not base64url", "a+b/c"},
		{"padded", enc("1893553445123456."+id) + "="},
		{"no separator", enc("1893553445123456")},
		{"no id", enc("1893553445123456.")},
		{"an id in another form", enc("1893553445123456.{" + id + "}")},
		{"upper-case id", enc("1893553445123456.01A1FE98-4EBC-7AB1-A444-E13141094433")},
		{"a time that is not a number", enc("soon." + id)},
		{"a plus sign", enc("+1893553445123456." + id)},
		{"a leading zero", enc("01893553445123456." + id)},
		{"before year 1", enc("-62135596800000001." + id)},
		{"after year 9999", enc("253402300800000000." + id)},
		{"beyond int64", enc("9223372036854775808." + id)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if c, err := parseCursor(tt.token); !errors.Is(err, ErrInvalidCursor) {
				t.Errorf("parseCursor(%q) = %v, %v; want ErrInvalidCursor", tt.token, c, err)
			}
		})
	}
}

// FuzzParseCursor checks that parseCursor accepts exactly what encode
// produces: whatever it accepts encodes back to the same token.
func FuzzParseCursor(f *testing.F) {
	f.Add("")
	f.Add(Cursor{CreatedAt: time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC), ID: "01a1fe98-4ebc-7ab1-a444-e13141094433"}.encode())
	f.Add(base64.RawURLEncoding.EncodeToString([]byte("-1.00000000-0000-0000-0000-000000000000")))
	f.Add("!!!")
	f.Fuzz(func(t *testing.T, token string) {
		c, err := parseCursor(token)
		switch {
		case err != nil && !errors.Is(err, ErrInvalidCursor):
			t.Fatalf("parseCursor(%q) error = %v, want ErrInvalidCursor", token, err)
		case err == nil && token != "" && c.encode() != token:
			t.Fatalf("parseCursor(%q) = %v, which encodes as %q", token, c, c.encode())
		case err == nil && token != "" && (c.CreatedAt.Year() < 1 || c.CreatedAt.Year() > 9999 || !validID(c.ID)):
			t.Fatalf("parseCursor(%q) = %v, outside what lists can hold", token, c)
		}
	})
}
