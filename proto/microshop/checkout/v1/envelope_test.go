package checkoutv1_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

var (
	occurredAt = time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)
	eur1999    = &checkoutv1.Money{MinorUnits: 1999, Currency: "EUR"}
	twoLines   = []*checkoutv1.OrderLine{{Sku: "sku-1", Quantity: 2}, {Sku: "sku-2", Quantity: 1}}
)

// payloadCase is one payload of the oneof, filled in every field, and the
// topic it belongs on.
type payloadCase struct {
	field   protoreflect.Name // the oneof field in envelope.proto
	message proto.Message
	topic   string
}

// payloadCases returns every payload of the Envelope oneof;
// TestPayloadCasesCoverTheSchema fails when the schema gains one not listed.
func payloadCases() []payloadCase {
	return []payloadCase{
		{"reserve_stock", &checkoutv1.ReserveStock{OrderId: "ord-1", Lines: twoLines}, checkoutv1.TopicInventoryCommands},
		{"commit_reservation", &checkoutv1.CommitReservation{OrderId: "ord-1"}, checkoutv1.TopicInventoryCommands},
		{"release_stock", &checkoutv1.ReleaseStock{OrderId: "ord-1"}, checkoutv1.TopicInventoryCommands},
		{"charge_payment", &checkoutv1.ChargePayment{OrderId: "ord-1", Amount: eur1999, CardNumber: "4242424242424242",
			IdempotencyKey: "saga-1/charge_payment"}, checkoutv1.TopicPaymentCommands},
		{"refund_payment", &checkoutv1.RefundPayment{OrderId: "ord-1", Amount: eur1999,
			IdempotencyKey: "saga-1/refund_payment"}, checkoutv1.TopicPaymentCommands},
		{"stock_reserved", &checkoutv1.StockReserved{OrderId: "ord-1", ReservationId: "res-1",
			ExpiresAt: timestamppb.New(occurredAt.Add(15 * time.Minute))}, checkoutv1.TopicReplies},
		{"stock_rejected", &checkoutv1.StockRejected{OrderId: "ord-1", Reason: "insufficient stock: 2 requested, 1 available",
			Sku: "sku-1"}, checkoutv1.TopicReplies},
		{"reservation_committed", &checkoutv1.ReservationCommitted{OrderId: "ord-1"}, checkoutv1.TopicReplies},
		{"stock_released", &checkoutv1.StockReleased{OrderId: "ord-1"}, checkoutv1.TopicReplies},
		{"payment_captured", &checkoutv1.PaymentCaptured{OrderId: "ord-1", PaymentId: "pay-1", PspReference: "ch_1"},
			checkoutv1.TopicReplies},
		{"payment_failed", &checkoutv1.PaymentFailed{OrderId: "ord-1", Reason: "card_declined"}, checkoutv1.TopicReplies},
		{"payment_refunded", &checkoutv1.PaymentRefunded{OrderId: "ord-1", RefundId: "ref-1"}, checkoutv1.TopicReplies},
		{"commit_rejected", &checkoutv1.CommitRejected{OrderId: "ord-1", Reason: "the order's reservation is EXPIRED"},
			checkoutv1.TopicReplies},
		{"order_placed", &checkoutv1.OrderPlaced{OrderId: "ord-1", CustomerId: "alice", Total: eur1999, Lines: twoLines},
			checkoutv1.TopicOrderEvents},
		{"order_confirmed", &checkoutv1.OrderConfirmed{OrderId: "ord-1"}, checkoutv1.TopicOrderEvents},
		{"order_cancelled", &checkoutv1.OrderCancelled{OrderId: "ord-1", Reason: "payment declined: card_declined"},
			checkoutv1.TopicOrderEvents},
	}
}

// caseOf returns the payload case of the oneof field named field.
func caseOf(t testing.TB, field protoreflect.Name) payloadCase {
	t.Helper()
	for _, c := range payloadCases() {
		if c.field == field {
			return c
		}
	}
	t.Fatalf("no payload case %s", field)
	return payloadCase{}
}

// payloadFields are the fields of the Envelope's payload oneof.
func payloadFields() protoreflect.FieldDescriptors {
	return (&checkoutv1.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("payload").Fields()
}

// envelope returns a valid envelope with c's payload.
func envelope(t testing.TB, c payloadCase) *checkoutv1.Envelope {
	t.Helper()
	e := &checkoutv1.Envelope{
		MessageId:     "msg-2",
		SagaId:        "saga-1",
		Step:          "reserve_stock",
		CorrelationId: "req-1",
		CausationId:   "msg-1",
		OccurredAt:    timestamppb.New(occurredAt),
	}
	field := payloadFields().ByName(c.field)
	if field == nil {
		t.Fatalf("envelope.proto has no payload field %s", c.field)
	}
	if got, want := c.message.ProtoReflect().Descriptor().FullName(), field.Message().FullName(); got != want {
		t.Fatalf("payload field %s holds a %s, the case has a %s", c.field, want, got)
	}
	e.ProtoReflect().Set(field, protoreflect.ValueOfMessage(proto.Clone(c.message).ProtoReflect()))
	return e
}

func TestPayloadCasesCoverTheSchema(t *testing.T) {
	var want, got []protoreflect.Name
	fields := payloadFields()
	for i := range fields.Len() {
		want = append(want, fields.Get(i).Name())
	}
	for _, c := range payloadCases() {
		got = append(got, c.field)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("payload cases differ from envelope.proto's oneof (-schema +cases):\n%s", diff)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, c := range payloadCases() {
		t.Run(string(c.field), func(t *testing.T) {
			want := envelope(t, c)
			data, err := checkoutv1.Marshal(want)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			got, err := checkoutv1.Unmarshal(data)
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("round trip changed the envelope (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTopicOfEveryPayload(t *testing.T) {
	for _, c := range payloadCases() {
		t.Run(string(c.field), func(t *testing.T) {
			got, err := checkoutv1.TopicOf(envelope(t, c))
			if err != nil {
				t.Fatalf("TopicOf: %v", err)
			}
			if got != c.topic {
				t.Errorf("TopicOf = %q, want %q", got, c.topic)
			}
		})
	}
}

func TestOrderIDAndPayloadMessage(t *testing.T) {
	for _, c := range payloadCases() {
		t.Run(string(c.field), func(t *testing.T) {
			e := envelope(t, c)
			if got := checkoutv1.OrderID(e); got != "ord-1" {
				t.Errorf("OrderID = %q, want %q", got, "ord-1")
			}
			if diff := cmp.Diff(c.message, checkoutv1.PayloadMessage(e), protocmp.Transform()); diff != "" {
				t.Errorf("PayloadMessage (-want +got):\n%s", diff)
			}
		})
	}
	noPayload := without(t, func(e *checkoutv1.Envelope) { e.Payload = nil })
	if got := checkoutv1.OrderID(noPayload); got != "" {
		t.Errorf("OrderID without payload = %q, want empty", got)
	}
	if got := checkoutv1.PayloadMessage(noPayload); got != nil {
		t.Errorf("PayloadMessage without payload = %v, want nil", got)
	}
	if got := checkoutv1.PayloadMessage(nil); got != nil {
		t.Errorf("PayloadMessage(nil) = %v, want nil", got)
	}
}

func TestTopics(t *testing.T) {
	want := []string{"checkout.inventory.commands", "checkout.payment.commands", "checkout.replies", "order.events"}
	if diff := cmp.Diff(want, checkoutv1.Topics()); diff != "" {
		t.Errorf("Topics() (-want +got):\n%s", diff)
	}
	if got, want := checkoutv1.DLQTopic(checkoutv1.TopicReplies), "checkout.replies.dlq"; got != want {
		t.Errorf("DLQTopic = %q, want %q", got, want)
	}
}

// wire marshals e without validating it, as a faulty or hostile producer could.
func wire(t *testing.T, e *checkoutv1.Envelope) []byte {
	t.Helper()
	b, err := proto.Marshal(e)
	if err != nil {
		t.Fatalf("proto.Marshal: %v", err)
	}
	return b
}

// without returns a valid ReserveStock envelope changed by edit.
func without(t testing.TB, edit func(*checkoutv1.Envelope)) *checkoutv1.Envelope {
	t.Helper()
	e := envelope(t, caseOf(t, "reserve_stock"))
	edit(e)
	return e
}

func TestUnmarshalRejects(t *testing.T) {
	tests := []struct {
		name        string
		data        []byte
		wantInError string
		wantUnknown bool // the error also matches ErrUnknownPayload
	}{
		{"empty input", nil, "no payload; also without message_id, correlation_id, occurred_at", false},
		{"not protobuf", []byte("{\"order_id\": \"ord-1\"}"), "cannot parse", false},
		{"truncated", wire(t, envelope(t, caseOf(t, "reserve_stock")))[:20], "cannot parse", false},
		{"no payload", wire(t, without(t, func(e *checkoutv1.Envelope) { e.Payload = nil })), "no payload", false},
		{"unknown payload", protowire.AppendBytes(protowire.AppendTag(
			wire(t, without(t, func(e *checkoutv1.Envelope) { e.Payload = nil })), 99, protowire.BytesType), []byte{0x0a, 0x01, 'x'}),
			"does not know", true},
		{"no message_id", wire(t, without(t, func(e *checkoutv1.Envelope) { e.MessageId = "" })), "ReserveStock without message_id", false},
		{"no correlation_id", wire(t, without(t, func(e *checkoutv1.Envelope) { e.CorrelationId = "" })), "without correlation_id", false},
		{"no occurred_at", wire(t, without(t, func(e *checkoutv1.Envelope) { e.OccurredAt = nil })), "without occurred_at", false},
		{"invalid occurred_at", wire(t, without(t, func(e *checkoutv1.Envelope) { e.OccurredAt.Nanos = -1 })), "occurred_at", false},
		{"command without saga_id", wire(t, without(t, func(e *checkoutv1.Envelope) { e.SagaId = "" })), "without saga_id", false},
		{"command without step", wire(t, without(t, func(e *checkoutv1.Envelope) { e.Step = "" })), "without step", false},
		{"reply without saga_id and step", wire(t, without(t, func(e *checkoutv1.Envelope) {
			e.SagaId, e.Step = "", ""
			e.Payload = &checkoutv1.Envelope_StockReleased{StockReleased: &checkoutv1.StockReleased{OrderId: "ord-1"}}
		})), "StockReleased without saga_id, step", false},
		{"payload without order_id", wire(t, without(t, func(e *checkoutv1.Envelope) {
			e.Payload = &checkoutv1.Envelope_ChargePayment{ChargePayment: &checkoutv1.ChargePayment{IdempotencyKey: "k"}}
		})), "ChargePayment without payload order_id", false},
		{"empty payload message", wire(t, without(t, func(e *checkoutv1.Envelope) {
			e.Payload = &checkoutv1.Envelope_ReleaseStock{}
		})), "ReleaseStock without payload order_id", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkoutv1.Unmarshal(tt.data)
			if err == nil {
				t.Fatalf("Unmarshal = %v, want an error", got)
			}
			if !errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
				t.Errorf("Unmarshal error %q does not match ErrInvalidEnvelope", err)
			}
			if errors.Is(err, checkoutv1.ErrUnknownPayload) != tt.wantUnknown {
				t.Errorf("Unmarshal error %q: matches ErrUnknownPayload = %t, want %t", err, !tt.wantUnknown, tt.wantUnknown)
			}
			if !strings.Contains(err.Error(), tt.wantInError) {
				t.Errorf("Unmarshal error %q does not say %q", err, tt.wantInError)
			}
			if got != nil {
				t.Errorf("Unmarshal returned %v with its error, want nil", got)
			}
		})
	}
}

func TestUnmarshalAccepts(t *testing.T) {
	tests := []struct {
		name string
		e    *checkoutv1.Envelope
	}{
		{"first message, no causation_id", without(t, func(e *checkoutv1.Envelope) { e.CausationId = "" })},
		{"order event without saga_id and step", func() *checkoutv1.Envelope {
			e := envelope(t, caseOf(t, "order_placed"))
			e.SagaId, e.Step = "", ""
			return e
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkoutv1.Unmarshal(wire(t, tt.e))
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if diff := cmp.Diff(tt.e, got, protocmp.Transform()); diff != "" {
				t.Errorf("Unmarshal (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnmarshalKeepsUnknownFields(t *testing.T) {
	// A newer producer added a header field (number 7): this build passes it
	// on unchanged when it re-marshals the envelope.
	data := protowire.AppendString(protowire.AppendTag(wire(t, envelope(t, caseOf(t, "reserve_stock"))), 7, protowire.BytesType), "tenant-1")
	e, err := checkoutv1.Unmarshal(data)
	if err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	again, err := checkoutv1.Marshal(e)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	if !strings.Contains(string(again), "tenant-1") {
		t.Errorf("re-marshalled envelope lost the unknown field: %q", again)
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		e    *checkoutv1.Envelope
	}{
		{"nil", nil},
		{"no payload", without(t, func(e *checkoutv1.Envelope) { e.Payload = nil })},
		{"no message_id", without(t, func(e *checkoutv1.Envelope) { e.MessageId = "" })},
		{"nil payload message", without(t, func(e *checkoutv1.Envelope) { e.Payload = &checkoutv1.Envelope_ReleaseStock{} })},
		{"invalid occurred_at", without(t, func(e *checkoutv1.Envelope) { e.OccurredAt.Seconds = 1 << 62 })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := checkoutv1.Marshal(tt.e)
			if !errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
				t.Errorf("Marshal = %q, %v; want an error matching ErrInvalidEnvelope", data, err)
			}
		})
	}
}

// FuzzUnmarshalEnvelope feeds Unmarshal what an untrusted Kafka topic could
// carry. It must never panic; whatever it accepts must be valid and survive a
// Marshal/Unmarshal round trip unchanged; whatever it refuses must match
// ErrInvalidEnvelope, the consumer's cue to dead-letter.
func FuzzUnmarshalEnvelope(f *testing.F) {
	for _, c := range payloadCases() {
		b, err := checkoutv1.Marshal(envelope(f, c))
		if err != nil {
			f.Fatalf("Marshal %s: %v", c.field, err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte("not an envelope"))
	f.Add([]byte{0x52, 0x00}) // field 10 (reserve_stock), empty message
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := checkoutv1.Unmarshal(data)
		if err != nil {
			if !errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
				t.Fatalf("Unmarshal error %q does not match ErrInvalidEnvelope", err)
			}
			return
		}
		if err := checkoutv1.Validate(e); err != nil {
			t.Fatalf("Unmarshal accepted an envelope Validate refuses: %v", err)
		}
		again, err := checkoutv1.Marshal(e)
		if err != nil {
			t.Fatalf("Marshal of an accepted envelope: %v", err)
		}
		e2, err := checkoutv1.Unmarshal(again)
		if err != nil {
			t.Fatalf("Unmarshal of a re-marshalled envelope: %v", err)
		}
		if diff := cmp.Diff(e, e2, protocmp.Transform()); diff != "" {
			t.Fatalf("round trip changed an accepted envelope (-first +second):\n%s", diff)
		}
	})
}
