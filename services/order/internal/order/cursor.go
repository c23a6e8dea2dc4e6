package order

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
)

// Cursor is a position in a customer's list of orders, newest first: the
// last order of a page. The list goes on with orders created before
// CreatedAt, or at CreatedAt with a smaller ID, so orders created in the same
// instant are neither skipped nor repeated. The zero Cursor is the start.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// IsZero reports whether c is the start of the list.
func (c Cursor) IsZero() bool { return c.ID == "" }

func cursorAfter(o Order) Cursor { return Cursor{CreatedAt: o.CreatedAt, ID: o.ID} }

// encode returns c as the opaque token clients pass back: base64url of
// "<created_at in Unix microseconds>.<id>".
func (c Cursor) encode() string {
	raw := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + c.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// parseCursor decodes a token made by encode; "" is the zero Cursor. It
// accepts only what encode produces, so nothing else reaches the database.
func parseCursor(token string) (Cursor, error) {
	if token == "" {
		return Cursor{}, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return Cursor{}, ErrInvalidCursor
	}
	micros, id, ok := strings.Cut(string(raw), ".")
	if !ok || !validID(id) {
		return Cursor{}, ErrInvalidCursor
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return Cursor{}, ErrInvalidCursor
	}
	c := Cursor{CreatedAt: time.UnixMicro(n).UTC(), ID: id}
	// Years outside 1..9999 are out of range for some databases, and a
	// number written another way ("+1", "01") is not a token encode made.
	if y := c.CreatedAt.Year(); y < 1 || y > 9999 || c.encode() != token {
		return Cursor{}, ErrInvalidCursor
	}
	return c, nil
}
