package order

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/paycard"
)

// Limits on what a request may hold.
const (
	MaxLines          = 50
	MaxQuantity       = 1000
	MaxSKULength      = 64
	MaxKeyLength      = 255
	MaxCustomerLength = 255

	DefaultListLimit = 20
	MaxListLimit     = 100
)

// FieldError is one invalid field of a request.
type FieldError struct {
	// Field is the field's JSON path, e.g. "lines[1].quantity".
	Field string
	// Message says what is wrong with it.
	Message string
}

// ValidationError is returned when a request's values are invalid. Fields
// lists every problem found, in the order of the request's fields.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid request")
	for i, f := range e.Fields {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + f.Field + " " + f.Message)
	}
	return b.String()
}

// fieldErrors collects FieldErrors; err returns nil while it is empty.
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, message string) {
	*fe = append(*fe, FieldError{Field: field, Message: message})
}

func (fe fieldErrors) err() error {
	if len(fe) == 0 {
		return nil
	}
	return &ValidationError{Fields: fe}
}

// ValidIdempotencyKey reports whether key is 1 to MaxKeyLength printable
// ASCII characters, the form Create accepts. Transports check it first to
// answer a bad header as such.
func ValidIdempotencyKey(key string) bool {
	if len(key) < 1 || len(key) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] < ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}

// checkCustomerID returns what is wrong with id, or "". Ids end up in SQL
// parameters, so text a database would refuse (invalid UTF-8, NUL) is
// refused here as a client error.
func checkCustomerID(id string) string {
	const msg = "must be 1 to 255 characters of UTF-8 text without control characters"
	if id == "" {
		return "is required"
	}
	if !utf8.ValidString(id) || utf8.RuneCountInString(id) > MaxCustomerLength || strings.ContainsFunc(id, unicode.IsControl) {
		return msg
	}
	return ""
}

func validSKU(sku string) bool {
	if len(sku) < 1 || len(sku) > MaxSKULength {
		return false
	}
	for i := 0; i < len(sku); i++ {
		c := sku[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validID reports whether id is a UUID in canonical form, the only form
// Create gives out; anything else cannot name an order.
func validID(id string) bool {
	u, err := uuid.Parse(id)
	return err == nil && u.String() == id
}

// validate checks every field of r and returns the order's total.
func (r CreateRequest) validate() (money.Amount, error) {
	var errs fieldErrors
	if msg := checkCustomerID(r.CustomerID); msg != "" {
		errs.add("customer_id", msg)
	}
	if !ValidIdempotencyKey(r.IdempotencyKey) {
		errs.add("idempotency_key", fmt.Sprintf("must be 1 to %d printable ASCII characters", MaxKeyLength))
	}
	if len(r.Lines) < 1 || len(r.Lines) > MaxLines {
		errs.add("lines", fmt.Sprintf("must hold 1 to %d lines", MaxLines))
	}
	firstLine := make(map[string]int, len(r.Lines)) // SKU → index of its first line
	for i, l := range r.Lines {
		path := fmt.Sprintf("lines[%d]", i)
		if !validSKU(l.SKU) {
			errs.add(path+".sku", fmt.Sprintf("must be 1 to %d characters of A-Z, 0-9 and -", MaxSKULength))
		} else if first, seen := firstLine[l.SKU]; seen {
			errs.add(path+".sku", fmt.Sprintf("repeats lines[%d].sku: give one line per SKU", first))
		} else {
			firstLine[l.SKU] = i
		}
		if l.Quantity < 1 || l.Quantity > MaxQuantity {
			errs.add(path+".quantity", fmt.Sprintf("must be from 1 to %d", MaxQuantity))
		}
		if l.UnitPrice.Minor < 0 {
			errs.add(path+".unit_price.amount", "must not be negative")
		}
		switch {
		case !money.ValidCurrency(l.UnitPrice.Currency):
			errs.add(path+".unit_price.currency", "must be an ISO 4217 code such as EUR")
		case i > 0 && money.ValidCurrency(r.Lines[0].UnitPrice.Currency) && l.UnitPrice.Currency != r.Lines[0].UnitPrice.Currency:
			errs.add(path+".unit_price.currency", "must be the currency of lines[0]: one order, one currency")
		}
	}
	if !paycard.Valid(r.CardNumber) {
		errs.add("card_number", "must be 12 to 19 digits passing the Luhn check")
	}
	if err := errs.err(); err != nil {
		return money.Amount{}, err
	}
	return total(r.Lines)
}

// total sums the lines with checked arithmetic: an amount too large for
// int64 is the client's error, not a wrapped-around total.
func total(lines []Line) (money.Amount, error) {
	var sum money.Amount
	for i, l := range lines {
		amount, err := l.UnitPrice.Mul(l.Quantity)
		if err != nil {
			return money.Amount{}, (fieldErrors{{Field: fmt.Sprintf("lines[%d]", i), Message: "quantity × unit_price.amount is too large"}}).err()
		}
		if sum, err = sum.Add(amount); err != nil {
			return money.Amount{}, (fieldErrors{{Field: "lines", Message: "the order's total is too large"}}).err()
		}
	}
	return sum, nil
}

// requestHash fingerprints what a create request means: who, which
// quantities of which SKUs, and which card pays. Lines are a set: sorted by
// SKU first, so their order does not matter (validate refuses a SKU on two
// lines, so no two lines sort alike). Prices are left out on purpose: a
// retry may carry a newer catalog price and is still the same request. The
// card enters as HMAC-SHA256 under cardKey, so the stored fingerprint
// cannot be reversed to it by trying every card number. Every string is
// length-prefixed so that no two requests encode alike.
func requestHash(cardKey []byte, r CreateRequest) string {
	lines := slices.SortedFunc(slices.Values(r.Lines), func(a, b Line) int { return strings.Compare(a.SKU, b.SKU) })
	buf := appendString(nil, r.CustomerID)
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(lines)))
	for _, l := range lines {
		buf = appendString(buf, l.SKU)
		buf = binary.BigEndian.AppendUint64(buf, uint64(l.Quantity))
	}
	card := hmac.New(sha256.New, cardKey)
	card.Write([]byte(r.CardNumber))
	buf = card.Sum(buf)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

func appendString(buf []byte, s string) []byte {
	buf = binary.BigEndian.AppendUint64(buf, uint64(len(s)))
	return append(buf, s...)
}
