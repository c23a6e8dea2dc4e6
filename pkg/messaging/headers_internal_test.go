package messaging

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
)

func TestDeadLetterMessage(t *testing.T) {
	cause := errors.New("decode payload: bad payload")
	dlqHeaders := []kafka.Header{
		{Key: HeaderDLQError, Value: []byte("decode payload: bad payload")},
		{Key: HeaderDLQOriginalTopic, Value: []byte("stock")},
		{Key: HeaderDLQOriginalPartition, Value: []byte("2")},
		{Key: HeaderDLQOriginalOffset, Value: []byte("41")},
		{Key: HeaderDLQAttempts, Value: []byte("5")},
	}
	tests := []struct {
		name    string
		headers []kafka.Header
		want    []kafka.Header
	}{
		{"no headers", nil, dlqHeaders},
		{
			"own headers kept first",
			[]kafka.Header{{Key: "message-id", Value: []byte("m-1")}},
			append([]kafka.Header{{Key: "message-id", Value: []byte("m-1")}}, dlqHeaders...),
		},
		{
			"an earlier trip's dead-letter headers replaced",
			[]kafka.Header{
				{Key: HeaderDLQError, Value: []byte("timeout")},
				{Key: "message-id", Value: []byte("m-1")},
				{Key: HeaderDLQAttempts, Value: []byte("1")},
			},
			append([]kafka.Header{{Key: "message-id", Value: []byte("m-1")}}, dlqHeaders...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := kafka.Message{
				Topic: "stock", Partition: 2, Offset: 41,
				Key: []byte("order-1"), Value: []byte("{"), Headers: tt.headers,
			}
			before := append([]kafka.Header(nil), tt.headers...)
			got := deadLetter("stock.dlq", orig, 5, cause)
			want := kafka.Message{Topic: "stock.dlq", Key: []byte("order-1"), Value: []byte("{"), Headers: tt.want}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("deadLetter (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, orig.Headers); diff != "" {
				t.Errorf("original headers changed (-before +after):\n%s", diff)
			}
		})
	}
}

func TestHeaders(t *testing.T) {
	msg := kafka.Message{Headers: []kafka.Header{
		{Key: "saga-id", Value: []byte("o-1")},
		{Key: "saga-step", Value: []byte("old")},
		{Key: "saga-step", Value: []byte("reserve-stock")},
	}}
	want := map[string]string{"saga-id": "o-1", "saga-step": "reserve-stock"}
	if diff := cmp.Diff(want, Headers(msg)); diff != "" {
		t.Errorf("Headers (-want +got):\n%s", diff)
	}
	if got := Headers(kafka.Message{}); len(got) != 0 {
		t.Errorf("Headers of a message without headers = %v, want empty", got)
	}
}
