package checkoutv1_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

func TestRoleOfEveryPayload(t *testing.T) {
	want := map[string]checkoutv1.Role{
		"reserve_stock":         {Step: checkoutv1.StepReserveStock},
		"release_stock":         {Step: checkoutv1.StepReserveStock, Compensation: true},
		"charge_payment":        {Step: checkoutv1.StepChargePayment},
		"refund_payment":        {Step: checkoutv1.StepChargePayment, Compensation: true},
		"commit_reservation":    {Step: checkoutv1.StepCommitReservation},
		"stock_reserved":        {Step: checkoutv1.StepReserveStock, Reply: true, OK: true},
		"stock_rejected":        {Step: checkoutv1.StepReserveStock, Reply: true},
		"stock_released":        {Step: checkoutv1.StepReserveStock, Compensation: true, Reply: true, OK: true},
		"payment_captured":      {Step: checkoutv1.StepChargePayment, Reply: true, OK: true},
		"payment_failed":        {Step: checkoutv1.StepChargePayment, Reply: true},
		"payment_refunded":      {Step: checkoutv1.StepChargePayment, Compensation: true, Reply: true, OK: true},
		"reservation_committed": {Step: checkoutv1.StepCommitReservation, Reply: true, OK: true},
		"commit_rejected":       {Step: checkoutv1.StepCommitReservation, Reply: true},
	}
	for _, c := range payloadCases() {
		t.Run(string(c.field), func(t *testing.T) {
			got, ok := checkoutv1.RoleOf(envelope(t, c))
			w, isSagaMessage := want[string(c.field)]
			if ok != isSagaMessage || got != w {
				t.Errorf("RoleOf = %+v, %t; want %+v, %t", got, ok, w, isSagaMessage)
			}
			// Commands and replies travel on the saga's topics, events do not.
			if onSagaTopic := c.topic != checkoutv1.TopicOrderEvents; onSagaTopic != isSagaMessage {
				t.Errorf("payload on %s: RoleOf ok = %t", c.topic, ok)
			}
		})
	}
}

func TestReasonOf(t *testing.T) {
	tests := []struct {
		env  *checkoutv1.Envelope
		want string
	}{
		{&checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockRejected{StockRejected: &checkoutv1.StockRejected{Reason: "out of stock"}}}, "out of stock"},
		{&checkoutv1.Envelope{Payload: &checkoutv1.Envelope_PaymentFailed{PaymentFailed: &checkoutv1.PaymentFailed{Reason: "declined"}}}, "declined"},
		{&checkoutv1.Envelope{Payload: &checkoutv1.Envelope_CommitRejected{CommitRejected: &checkoutv1.CommitRejected{Reason: "expired"}}}, "expired"},
		{&checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReserved{StockReserved: &checkoutv1.StockReserved{}}}, ""},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := checkoutv1.ReasonOf(tt.env); got != tt.want {
			t.Errorf("ReasonOf(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

func TestKeys(t *testing.T) {
	tests := []struct {
		key      string
		wantID   string
		wantKind checkoutv1.KeyKind
	}{
		{checkoutv1.ChargeKey("ord-1"), "ord-1", checkoutv1.KeyCharge},
		{checkoutv1.RefundKey("ord-1"), "ord-1", checkoutv1.KeyRefund},
		{"ord-1:charge:2", "", checkoutv1.KeyUnknown},
		{":charge", "", checkoutv1.KeyUnknown},
		{"ord-1", "", checkoutv1.KeyUnknown},
		{"", "", checkoutv1.KeyUnknown},
	}
	for _, tt := range tests {
		id, kind := checkoutv1.ParseKey(tt.key)
		if id != tt.wantID || kind != tt.wantKind {
			t.Errorf("ParseKey(%q) = %q, %v; want %q, %v", tt.key, id, kind, tt.wantID, tt.wantKind)
		}
	}
}

func TestUnmarshalCommand(t *testing.T) {
	for _, c := range payloadCases() {
		for _, topic := range []string{checkoutv1.TopicInventoryCommands, checkoutv1.TopicPaymentCommands} {
			t.Run(string(c.field)+" from "+topic, func(t *testing.T) {
				value, err := checkoutv1.Marshal(envelope(t, c))
				if err != nil {
					t.Fatal(err)
				}
				env, role, err := checkoutv1.UnmarshalCommand(value, topic)
				wantRole, isSagaMessage := checkoutv1.RoleOf(envelope(t, c))
				if isCommand := isSagaMessage && !wantRole.Reply && c.topic == topic; !isCommand {
					if !errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
						t.Errorf("UnmarshalCommand error = %v, want ErrInvalidEnvelope", err)
					}
					return
				}
				if err != nil || role != wantRole || checkoutv1.OrderID(env) != "ord-1" {
					t.Errorf("UnmarshalCommand = order %q, %+v, %v; want ord-1, %+v, nil", checkoutv1.OrderID(env), role, err, wantRole)
				}
			})
		}
	}
	if _, _, err := checkoutv1.UnmarshalCommand([]byte{0xff}, checkoutv1.TopicInventoryCommands); !errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
		t.Errorf("UnmarshalCommand of garbage error = %v, want ErrInvalidEnvelope", err)
	}
}

func TestReplyEncoder(t *testing.T) {
	reply := &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReleased{StockReleased: &checkoutv1.StockReleased{OrderId: "ord-1"}}}
	value, err := checkoutv1.ReplyEncoder(reply, "ord-1", checkoutv1.StepReserveStock, "cmd-1", occurredAt)("reply-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkoutv1.Unmarshal(value)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"reply-1", "ord-1", checkoutv1.StepReserveStock, "ord-1", "cmd-1", occurredAt.Format(time.RFC3339Nano)}
	gotFields := []string{got.GetMessageId(), got.GetSagaId(), got.GetStep(), got.GetCorrelationId(), got.GetCausationId(),
		got.GetOccurredAt().AsTime().Format(time.RFC3339Nano)}
	if diff := cmp.Diff(want, gotFields); diff != "" {
		t.Errorf("reply envelope (-want +got):\n%s", diff)
	}
	if _, err := checkoutv1.ReplyEncoder(&checkoutv1.Envelope{}, "ord-1", checkoutv1.StepReserveStock, "cmd-1", occurredAt)("reply-2"); !errors.Is(err, checkoutv1.ErrInvalidEnvelope) {
		t.Errorf("encoding a reply without payload: error = %v, want ErrInvalidEnvelope", err)
	}
}

func TestPayloadName(t *testing.T) {
	if got := checkoutv1.PayloadName(envelope(t, caseOf(t, "reserve_stock"))); got != "ReserveStock" {
		t.Errorf("PayloadName = %q, want ReserveStock", got)
	}
	if got := checkoutv1.PayloadName(&checkoutv1.Envelope{}); got != "envelope" {
		t.Errorf("PayloadName of no payload = %q, want envelope", got)
	}
}

func TestWithDLQ(t *testing.T) {
	got := checkoutv1.WithDLQ(checkoutv1.TopicReplies, checkoutv1.TopicOrderEvents)
	want := []string{checkoutv1.TopicReplies, checkoutv1.TopicReplies + ".dlq", checkoutv1.TopicOrderEvents, checkoutv1.TopicOrderEvents + ".dlq"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("WithDLQ (-want +got):\n%s", diff)
	}
}
