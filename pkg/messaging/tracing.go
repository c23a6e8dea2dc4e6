package messaging

import (
	"context"
	"strconv"

	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
)

// HeaderMessageID is the Kafka header carrying a message's unique id, by
// which consumers drop duplicates (outbox.HeaderMessageID is the same).
const HeaderMessageID = "message-id"

// Trace context headers: the W3C trace context, carried in Kafka headers of
// the same names as the HTTP ones, so that the trace of the transaction that
// wrote a message continues at its consumer.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// tracerName names the tracer of this package's spans.
const tracerName = "github.com/microshop/microshop/pkg/messaging"

// traceContext is the propagator of trace context through Kafka headers.
// It is W3C trace context whatever OTel's global propagator is: that is the
// contract of the topics (see DESIGN.md), not a choice of one process.
var traceContext propagation.TraceContext

// InjectTraceContext returns headers with the trace context of the span in
// ctx set (HeaderTraceParent, and HeaderTraceState if there is one),
// replacing any such headers already there. Without a span in ctx it
// returns headers unchanged.
func InjectTraceContext(ctx context.Context, headers []kafka.Header) []kafka.Header {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return headers
	}
	kept := headers[:0:0]
	for _, h := range headers {
		if h.Key != HeaderTraceParent && h.Key != HeaderTraceState {
			kept = append(kept, h)
		}
	}
	for _, key := range []string{HeaderTraceParent, HeaderTraceState} {
		if v, ok := carrier[key]; ok {
			kept = append(kept, kafka.Header{Key: key, Value: []byte(v)})
		}
	}
	return kept
}

// ExtractTraceContext returns ctx with the remote span context of msg's trace
// headers, the parent of the span that handles msg. Without valid headers it
// returns ctx unchanged.
func ExtractTraceContext(ctx context.Context, msg kafka.Message) context.Context {
	carrier := propagation.MapCarrier{}
	for _, key := range []string{HeaderTraceParent, HeaderTraceState} {
		if v, ok := Header(msg, key); ok {
			carrier[key] = v
		}
	}
	return traceContext.Extract(ctx, carrier)
}

// startProcessSpan starts the consumer span of the handling of msg, a child
// of the trace in msg's headers, with the messaging semantic conventions'
// attributes.
func (c *Consumer) startProcessSpan(ctx context.Context, msg kafka.Message) (context.Context, trace.Span) {
	attrs := []attribute.KeyValue{
		semconv.MessagingSystemKafka,
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingOperationName("process"),
		semconv.MessagingDestinationName(msg.Topic),
		semconv.MessagingDestinationPartitionID(strconv.Itoa(msg.Partition)),
		semconv.MessagingKafkaOffset(int(msg.Offset)),
		semconv.MessagingConsumerGroupName(c.cfg.GroupID),
		semconv.MessagingKafkaMessageKey(string(msg.Key)),
		semconv.MessagingMessageBodySize(len(msg.Value)),
	}
	if id, ok := Header(msg, HeaderMessageID); ok {
		attrs = append(attrs, semconv.MessagingMessageID(id))
	}
	return c.tracer.Start(ExtractTraceContext(ctx, msg), "process "+msg.Topic,
		trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
}

// endProcessSpan records how the handling of a message ended on its span and
// ends it.
func endProcessSpan(span trace.Span, outcome string, attempts int, err error) {
	span.SetAttributes(
		attribute.String("messaging.microshop.outcome", outcome),
		attribute.Int("messaging.microshop.attempts", attempts),
	)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// tracerOf returns the tracer of tp, or of OTel's global provider if tp is
// nil.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(tracerName)
}
