package inventory

import "encoding/base64"

// encodeCursor returns the cursor of the page after lastSKU: the SKU,
// base64url-encoded. Opaque to clients, it means the same on every replica
// and after restarts.
func encodeCursor(lastSKU string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(lastSKU))
}

// decodeCursor returns the SKU that cursor encodes ("" for ""), or
// ErrInvalidCursor.
func decodeCursor(cursor string) (afterSKU string, err error) {
	if cursor == "" {
		return "", nil
	}
	// Only the exact encoding of a SKU is a cursor: the decoder would also
	// accept line breaks and non-zero padding bits.
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if sku := string(b); err == nil && validSKU(sku) && encodeCursor(sku) == cursor {
		return sku, nil
	}
	return "", ErrInvalidCursor
}
