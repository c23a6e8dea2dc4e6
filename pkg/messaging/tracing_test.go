package messaging_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/poll"
)

// TestConsumerSpans: each message is handled inside a consumer span that
// continues the trace of its traceparent header, with the messaging
// attributes; one the handler cannot handle ends dead-lettered, its span
// marked as an error.
func TestConsumerSpans(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group = "payments", "payment-service"
	topicWithDLQ(ctx, t, kc, topic, 1)

	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	pctx, producer := tp.Tracer("test").Start(ctx, "send payments", trace.WithSpanKind(trace.SpanKindProducer))
	producer.End()
	headers := messaging.InjectTraceContext(pctx, []kafka.Header{{Key: messaging.HeaderMessageID, Value: []byte("m-1")}})
	produce(ctx, t, kc, topic,
		kafka.Message{Key: []byte("order-1"), Value: []byte("good"), Headers: headers},
		kafka.Message{Key: []byte("order-1"), Value: []byte("poison"), Headers: headers})

	cfg := consumerConfig(kc, group, topic)
	cfg.TracerProvider = tp
	r := runConsumer(t, cfg, func(ctx context.Context, msg kafka.Message) error {
		if !trace.SpanContextFromContext(ctx).IsValid() {
			return errors.New("handler called outside a span")
		}
		if string(msg.Value) == "poison" {
			return messaging.Permanent(errors.New("cannot decode"))
		}
		return nil
	}, nil)
	poll.Until(ctx, t, "two process spans ended", func() bool { return len(spans.Ended()) == 3 })
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}

	type span struct {
		Parent  trace.SpanID
		Kind    trace.SpanKind
		Status  codes.Code
		Outcome string
		Offset  string
		ID      string
	}
	var got []span
	for _, s := range spans.Ended()[1:] {
		attrs := map[string]string{}
		for _, kv := range s.Attributes() {
			attrs[string(kv.Key)] = kv.Value.String()
		}
		if s.Name() != "process "+topic || attrs["messaging.destination.name"] != topic ||
			attrs["messaging.consumer.group.name"] != group || attrs["messaging.system"] != "kafka" {
			t.Errorf("span %q has attributes %v, want those of processing %s in %s", s.Name(), attrs, topic, group)
		}
		got = append(got, span{Parent: s.Parent().SpanID(), Kind: s.SpanKind(), Status: s.Status().Code,
			Outcome: attrs["messaging.microshop.outcome"], Offset: attrs["messaging.kafka.offset"], ID: attrs["messaging.message.id"]})
	}
	parent := producer.SpanContext().SpanID()
	want := []span{
		{Parent: parent, Kind: trace.SpanKindConsumer, Status: codes.Unset, Outcome: "ok", Offset: "0", ID: "m-1"},
		{Parent: parent, Kind: trace.SpanKindConsumer, Status: codes.Error, Outcome: "dead_lettered", Offset: "1", ID: "m-1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("process spans (-want +got):\n%s", diff)
	}
}
