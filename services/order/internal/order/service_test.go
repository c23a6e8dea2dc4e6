package order_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/clocktest"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/internal/order/ordertest"
)

var now = time.Date(2030, 1, 2, 3, 4, 5, 123456789, time.UTC)

func newService() *order.Service {
	return order.NewService(ordertest.NewMemoryStore(), clocktest.New(now).Now)
}

func eur(minor int64) money.Amount { return money.Amount{Minor: minor, Currency: "EUR"} }

func TestCreate(t *testing.T) {
	req := order.CreateRequest{
		CardNumber:     ordertest.TestCard,
		CustomerID:     "alice",
		IdempotencyKey: "key-1",
		Lines: []order.Line{
			{SKU: "MUG", Quantity: 2, UnitPrice: eur(1250)},
			{SKU: "TSHIRT-RED-M", Quantity: 1, UnitPrice: eur(1999)},
		},
	}
	got, created, err := newService().Create(t.Context(), req)
	if err != nil || !created {
		t.Fatalf("Create = created %v, %v; want a new order", created, err)
	}
	// The clock's nanoseconds are cut to microseconds, what databases keep.
	at := now.Truncate(time.Microsecond)
	want := order.Order{
		ID:         got.ID,
		CustomerID: "alice",
		Status:     order.StatusPending,
		Lines:      req.Lines,
		Total:      eur(2*1250 + 1999),
		CreatedAt:  at,
		UpdatedAt:  at,
		History:    []order.StatusChange{{Status: order.StatusPending, Reason: "order placed", At: at}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Create mismatch (-want +got):\n%s", diff)
	}
}

func TestCreateValidation(t *testing.T) {
	valid := func() order.CreateRequest {
		return order.CreateRequest{CardNumber: ordertest.TestCard, CustomerID: "alice", IdempotencyKey: "key-1", Lines: []order.Line{
			{SKU: "MUG", Quantity: 2, UnitPrice: eur(1250)},
			{SKU: "CAP", Quantity: 1, UnitPrice: eur(900)},
		}}
	}
	tests := []struct {
		name   string
		modify func(r *order.CreateRequest)
		want   []order.FieldError
	}{
		{"no customer", func(r *order.CreateRequest) { r.CustomerID = "" },
			[]order.FieldError{{Field: "customer_id", Message: "is required"}}},
		{"customer id with a control character", func(r *order.CreateRequest) { r.CustomerID = "al\x00ice" },
			[]order.FieldError{{Field: "customer_id", Message: "must be 1 to 255 characters of UTF-8 text without control characters"}}},
		{"customer id too long", func(r *order.CreateRequest) { r.CustomerID = strings.Repeat("é", 256) },
			[]order.FieldError{{Field: "customer_id", Message: "must be 1 to 255 characters of UTF-8 text without control characters"}}},
		{"no idempotency key", func(r *order.CreateRequest) { r.IdempotencyKey = "" },
			[]order.FieldError{{Field: "idempotency_key", Message: "must be 1 to 255 printable ASCII characters"}}},
		{"idempotency key too long", func(r *order.CreateRequest) { r.IdempotencyKey = strings.Repeat("k", 256) },
			[]order.FieldError{{Field: "idempotency_key", Message: "must be 1 to 255 printable ASCII characters"}}},
		{"idempotency key not ASCII", func(r *order.CreateRequest) { r.IdempotencyKey = "clé" },
			[]order.FieldError{{Field: "idempotency_key", Message: "must be 1 to 255 printable ASCII characters"}}},
		{"no card number", func(r *order.CreateRequest) { r.CardNumber = "" },
			[]order.FieldError{{Field: "card_number", Message: "must be 12 to 19 digits passing the Luhn check"}}},
		{"card number failing the Luhn check", func(r *order.CreateRequest) { r.CardNumber = "4242424242424241" },
			[]order.FieldError{{Field: "card_number", Message: "must be 12 to 19 digits passing the Luhn check"}}},
		{"card number with spaces", func(r *order.CreateRequest) { r.CardNumber = "4242 4242 4242 4242" },
			[]order.FieldError{{Field: "card_number", Message: "must be 12 to 19 digits passing the Luhn check"}}},
		{"no lines", func(r *order.CreateRequest) { r.Lines = nil },
			[]order.FieldError{{Field: "lines", Message: "must hold 1 to 50 lines"}}},
		{"51 lines", func(r *order.CreateRequest) { r.Lines = manyLines(51) },
			[]order.FieldError{{Field: "lines", Message: "must hold 1 to 50 lines"}}},
		{"empty SKU", func(r *order.CreateRequest) { r.Lines[1].SKU = "" },
			[]order.FieldError{{Field: "lines[1].sku", Message: "must be 1 to 64 characters of A-Z, 0-9 and -"}}},
		{"lower-case SKU", func(r *order.CreateRequest) { r.Lines[1].SKU = "cap" },
			[]order.FieldError{{Field: "lines[1].sku", Message: "must be 1 to 64 characters of A-Z, 0-9 and -"}}},
		{"SKU too long", func(r *order.CreateRequest) { r.Lines[1].SKU = strings.Repeat("A", 65) },
			[]order.FieldError{{Field: "lines[1].sku", Message: "must be 1 to 64 characters of A-Z, 0-9 and -"}}},
		{"duplicate SKU", func(r *order.CreateRequest) { r.Lines[1].SKU = "MUG" },
			[]order.FieldError{{Field: "lines[1].sku", Message: "repeats lines[0].sku: give one line per SKU"}}},
		{"zero quantity", func(r *order.CreateRequest) { r.Lines[1].Quantity = 0 },
			[]order.FieldError{{Field: "lines[1].quantity", Message: "must be from 1 to 1000"}}},
		{"quantity over 1000", func(r *order.CreateRequest) { r.Lines[0].Quantity = 1001 },
			[]order.FieldError{{Field: "lines[0].quantity", Message: "must be from 1 to 1000"}}},
		{"negative price", func(r *order.CreateRequest) { r.Lines[1].UnitPrice.Minor = -1 },
			[]order.FieldError{{Field: "lines[1].unit_price.amount", Message: "must not be negative"}}},
		{"no currency", func(r *order.CreateRequest) { r.Lines[0].UnitPrice.Currency = "" },
			[]order.FieldError{{Field: "lines[0].unit_price.currency", Message: "must be an ISO 4217 code such as EUR"}}},
		{"lower-case currency", func(r *order.CreateRequest) { r.Lines[0].UnitPrice.Currency = "eur" },
			[]order.FieldError{{Field: "lines[0].unit_price.currency", Message: "must be an ISO 4217 code such as EUR"}}},
		{"mixed currencies", func(r *order.CreateRequest) { r.Lines[1].UnitPrice.Currency = "USD" },
			[]order.FieldError{{Field: "lines[1].unit_price.currency", Message: "must be the currency of lines[0]: one order, one currency"}}},
		{"line total overflows", func(r *order.CreateRequest) { r.Lines[0].UnitPrice.Minor = math.MaxInt64/2 + 1 }, // × 2
			[]order.FieldError{{Field: "lines[0]", Message: "quantity × unit_price.amount is too large"}}},
		{"order total overflows", func(r *order.CreateRequest) {
			r.Lines[0].UnitPrice.Minor = math.MaxInt64 / 2
			r.Lines[1].UnitPrice.Minor = math.MaxInt64 / 2
		}, []order.FieldError{{Field: "lines", Message: "the order's total is too large"}}},
		{"every problem at once", func(r *order.CreateRequest) {
			r.CustomerID = ""
			r.Lines[0].Quantity = -5
			r.Lines[1] = order.Line{SKU: "MUG", UnitPrice: money.Amount{Minor: -1, Currency: "USD"}}
		}, []order.FieldError{
			{Field: "customer_id", Message: "is required"},
			{Field: "lines[0].quantity", Message: "must be from 1 to 1000"},
			{Field: "lines[1].sku", Message: "repeats lines[0].sku: give one line per SKU"},
			{Field: "lines[1].quantity", Message: "must be from 1 to 1000"},
			{Field: "lines[1].unit_price.amount", Message: "must not be negative"},
			{Field: "lines[1].unit_price.currency", Message: "must be the currency of lines[0]: one order, one currency"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := valid()
			tt.modify(&req)
			_, _, err := newService().Create(t.Context(), req)
			var invalid *order.ValidationError
			if !errors.As(err, &invalid) {
				t.Fatalf("Create error = %v, want a *ValidationError", err)
			}
			if diff := cmp.Diff(tt.want, invalid.Fields); diff != "" {
				t.Errorf("field errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateAcceptsTheLimits(t *testing.T) {
	tests := []struct {
		name string
		req  order.CreateRequest
	}{
		{"50 lines", order.CreateRequest{CardNumber: ordertest.TestCard, CustomerID: "alice", IdempotencyKey: "k", Lines: manyLines(50)}},
		{"longest key, SKU and customer id", order.CreateRequest{
			CardNumber:     ordertest.TestCard,
			CustomerID:     strings.Repeat("é", 255),
			IdempotencyKey: " ~" + strings.Repeat("k", 253),
			Lines:          []order.Line{{SKU: strings.Repeat("A-9", 21) + "Z", Quantity: 1000, UnitPrice: eur(0)}},
		}},
		{"largest total", order.CreateRequest{CardNumber: ordertest.TestCard, CustomerID: "alice", IdempotencyKey: "k", Lines: []order.Line{
			{SKU: "A", Quantity: 1, UnitPrice: eur(math.MaxInt64 - 1)},
			{SKU: "B", Quantity: 1, UnitPrice: eur(1)},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, created, err := newService().Create(t.Context(), tt.req); err != nil || !created {
				t.Errorf("Create = created %v, %v; want a new order", created, err)
			}
		})
	}
}

func TestGetRefusesIdsCreateNeverGives(t *testing.T) {
	svc := newService()
	o, _, err := svc.Create(t.Context(), order.CreateRequest{CardNumber: ordertest.TestCard, CustomerID: "alice", IdempotencyKey: "k", Lines: manyLines(1)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", "nope", strings.ToUpper(o.ID), "{" + o.ID + "}", "urn:uuid:" + o.ID, strings.ReplaceAll(o.ID, "-", "")} {
		if _, err := svc.Get(t.Context(), id, ""); !errors.Is(err, order.ErrOrderNotFound) {
			t.Errorf("Get(%q) error = %v, want ErrOrderNotFound", id, err)
		}
	}
}

func TestListValidation(t *testing.T) {
	tests := []struct {
		name     string
		customer string
		limit    int
		want     []order.FieldError
	}{
		{"no customer", "", 10, []order.FieldError{{Field: "customer_id", Message: "is required"}}},
		{"invalid UTF-8 customer id", "\xff", 10, []order.FieldError{{Field: "customer_id", Message: "must be 1 to 255 characters of UTF-8 text without control characters"}}},
		{"zero limit", "alice", 0, []order.FieldError{{Field: "limit", Message: "must be from 1 to 100"}}},
		{"limit over 100", "alice", 101, []order.FieldError{{Field: "limit", Message: "must be from 1 to 100"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := newService().List(t.Context(), tt.customer, tt.limit, "")
			var invalid *order.ValidationError
			if !errors.As(err, &invalid) {
				t.Fatalf("List error = %v, want a *ValidationError", err)
			}
			if diff := cmp.Diff(tt.want, invalid.Fields); diff != "" {
				t.Errorf("field errors (-want +got):\n%s", diff)
			}
		})
	}
}

func manyLines(n int) []order.Line {
	lines := make([]order.Line, n)
	for i := range lines {
		lines[i] = order.Line{SKU: "SKU-" + strings.Repeat("A", i+1), Quantity: 1, UnitPrice: eur(100)}
	}
	return lines
}
