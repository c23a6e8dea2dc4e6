package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/poll"
)

// TestTraceContinuesThroughKafka: a message added inside a trace is
// published with a producer span, child of the adding transaction's span,
// and consumed by a messaging.Consumer whose handling span is the producer
// span's child, on every database engine; a message added outside a trace
// is published with no trace context and no span.
func TestTraceContinuesThroughKafka(t *testing.T) {
	for engine, open := range backends(t) {
		t.Run(engine, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			const topic = "checkout.commands"
			addr := startBroker(ctx, t, topic, topic+".dlq")
			db := open(t)
			spans := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))

			tctx, placeOrder := tp.Tracer("test").Start(ctx, "POST /api/v1/orders")
			add(tctx, t, db, outbox.Message{ID: "traced", Topic: topic, Key: "order-1", Payload: []byte("a")})
			placeOrder.End()
			add(ctx, t, db, outbox.Message{ID: "untraced", Topic: topic, Key: "order-2", Payload: []byte("b")})

			relay, _ := newRelay(t, db, newWriter(t, addr), outbox.RelayOptions{TracerProvider: tp})
			if n := drain(ctx, t, relay); n != 2 {
				t.Fatalf("relayed %d messages, want 2", n)
			}

			var mu sync.Mutex
			handled := map[string]trace.SpanContext{}
			traceparent := map[string]string{}
			consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
				Config:            messaging.Config{Brokers: []string{addr}, ClientID: "outbox-test"},
				GroupID:           "trace-test",
				Topics:            []string{topic},
				DeadLetterTopic:   topic + ".dlq",
				SessionTimeout:    6 * time.Second,
				RebalanceTimeout:  time.Second,
				HeartbeatInterval: 100 * time.Millisecond,
				MaxWait:           100 * time.Millisecond,
				TracerProvider:    tp,
			}, func(ctx context.Context, msg kafka.Message) error {
				id, _ := messaging.Header(msg, outbox.HeaderMessageID)
				mu.Lock()
				defer mu.Unlock()
				handled[id] = trace.SpanContextFromContext(ctx)
				traceparent[id], _ = messaging.Header(msg, messaging.HeaderTraceParent)
				return nil
			}, discard(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer consumer.Close()
			runCtx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() { done <- consumer.Run(runCtx) }()
			poll.Until(ctx, t, "both messages handled", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(handled) == 2
			})
			stop()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}

			byName := map[string][]sdktrace.ReadOnlySpan{}
			for _, s := range spans.Ended() {
				byName[s.Name()] = append(byName[s.Name()], s)
			}
			if got := len(byName["send "+topic]); got != 1 {
				t.Fatalf("%d send spans, want 1 (only the traced message): %v", got, names(spans.Ended()))
			}
			send := byName["send "+topic][0]
			if got, want := send.Parent().SpanID(), placeOrder.SpanContext().SpanID(); got != want {
				t.Errorf("send span's parent = %s, want the adding span %s", got, want)
			}
			if send.SpanKind() != trace.SpanKindProducer {
				t.Errorf("send span kind = %s, want producer", send.SpanKind())
			}

			var process sdktrace.ReadOnlySpan
			for _, s := range byName["process "+topic] {
				if s.SpanContext().Equal(handled["traced"]) {
					process = s
				}
			}
			if process == nil {
				t.Fatalf("the handler of the traced message ran in no process span; spans: %v", names(spans.Ended()))
			}
			if got, want := process.Parent().SpanID(), send.SpanContext().SpanID(); got != want {
				t.Errorf("process span's parent = %s, want the send span %s", got, want)
			}
			if got, want := process.SpanContext().TraceID(), placeOrder.SpanContext().TraceID(); got != want {
				t.Errorf("process span's trace = %s, want the order's %s", got, want)
			}
			attrs := map[string]string{}
			for _, kv := range process.Attributes() {
				attrs[string(kv.Key)] = kv.Value.String()
			}
			want := map[string]string{
				"messaging.system":                   "kafka",
				"messaging.operation.type":           "process",
				"messaging.destination.name":         topic,
				"messaging.message.id":               "traced",
				"messaging.kafka.message.key":        "order-1",
				"messaging.consumer.group.name":      "trace-test",
				"messaging.microshop.outcome":        "ok",
				"messaging.microshop.attempts":       "1",
				"messaging.destination.partition.id": attrs["messaging.destination.partition.id"],
				"messaging.kafka.offset":             attrs["messaging.kafka.offset"],
				"messaging.operation.name":           "process",
				"messaging.message.body.size":        "1",
			}
			if diff := cmp.Diff(want, attrs); diff != "" {
				t.Errorf("process span attributes (-want +got):\n%s", diff)
			}
			if !hasKey(process.Attributes(), "messaging.destination.partition.id") || !hasKey(process.Attributes(), "messaging.kafka.offset") {
				t.Errorf("process span lacks partition or offset: %v", process.Attributes())
			}

			if want := "00-" + send.SpanContext().TraceID().String() + "-" + send.SpanContext().SpanID().String() + "-01"; traceparent["traced"] != want {
				t.Errorf("traced message's traceparent = %q, want the send span's %q", traceparent["traced"], want)
			}
			if got := traceparent["untraced"]; got != "" {
				t.Errorf("untraced message published with traceparent %q, want none", got)
			}
			// The untraced message: handled in a span of a trace of its own.
			if untraced := handled["untraced"]; untraced.TraceID() == placeOrder.SpanContext().TraceID() || !untraced.IsValid() {
				t.Errorf("untraced message handled in span %v, want a new trace", untraced)
			}
		})
	}
}

func names(spans []sdktrace.ReadOnlySpan) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name())
	}
	return out
}

func hasKey(attrs []attribute.KeyValue, key string) bool {
	for _, kv := range attrs {
		if string(kv.Key) == key {
			return true
		}
	}
	return false
}
