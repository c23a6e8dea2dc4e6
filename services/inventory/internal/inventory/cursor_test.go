package inventory

import (
	"errors"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, sku := range []string{"A", "MUG-CLASSIC", "TSHIRT-ORGANIC-WHITE", "0-9"} {
		cursor := encodeCursor(sku)
		got, err := decodeCursor(cursor)
		if err != nil || got != sku {
			t.Errorf("decodeCursor(encodeCursor(%q)) = %q, %v; want %q, nil", sku, got, err, sku)
		}
	}
}

// FuzzDecodeCursor feeds decodeCursor what clients may send: it must answer
// ErrInvalidCursor or a valid SKU whose cursor is exactly the input.
func FuzzDecodeCursor(f *testing.F) {
	for _, seed := range []string{"", encodeCursor("MUG-CLASSIC"), "TVVH\n", "TVVH=", "!!", "bG93ZXI", "TVVI"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, cursor string) {
		sku, err := decodeCursor(cursor)
		switch {
		case err != nil && !errors.Is(err, ErrInvalidCursor):
			t.Fatalf("decodeCursor(%q) error = %v, want ErrInvalidCursor", cursor, err)
		case err == nil && cursor != "" && (!validSKU(sku) || encodeCursor(sku) != cursor):
			t.Fatalf("decodeCursor(%q) = %q, which is not a SKU encoded as the cursor", cursor, sku)
		}
	})
}
