package saga

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// Tracing of the orchestrator. A saga is one trace: Start runs in the span
// of the business transaction (an HTTP request), every command is sent in a
// span of its step, which the outbox keeps with the message, so the
// participant's handling and its reply continue the same trace, and the
// reply is applied in the span of its consumption. What the orchestrator
// does on its own later — an expired deadline, a compensation re-sent —
// has no caller: it continues the trace context saved with the instance at
// Start.

const tracerName = "github.com/microshop/microshop/pkg/saga"

// Span attributes of the saga spans.
const (
	attrSagaID     = attribute.Key("saga.id")
	attrDefinition = attribute.Key("saga.definition")
	attrStep       = attribute.Key("saga.step")
	attrOperation  = attribute.Key("saga.operation")
	attrAttempt    = attribute.Key("saga.attempt")
	attrStatus     = attribute.Key("saga.status")
	attrReply      = attribute.Key("saga.reply.result")
	attrReason     = attribute.Key("saga.reason")
	attrBarrier    = attribute.Key("saga.barrier") // a participant's barrier outcome
)

// traceContext reads and writes the W3C traceparent and tracestate.
var traceContext propagation.TraceContext

// savedTrace is the trace context kept with an instance.
type savedTrace struct{ parent, state string }

// traceOf returns the trace context of the span in ctx, empty outside one.
func traceOf(ctx context.Context) savedTrace {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	return savedTrace{parent: carrier["traceparent"], state: carrier["tracestate"]}
}

// within returns ctx with the saved trace context as the remote parent of
// the spans started from it; ctx unchanged if s holds none.
func (s savedTrace) within(ctx context.Context) context.Context {
	return traceContext.Extract(ctx, propagation.MapCarrier{"traceparent": s.parent, "tracestate": s.state})
}

// selectSavedTrace reads the trace context saved with saga id.
func selectSavedTrace(tx *gorm.DB, id string) (savedTrace, error) {
	var rows []struct{ Traceparent, Tracestate string }
	if err := tx.Raw("SELECT traceparent, tracestate FROM saga_instances WHERE id = ?", id).Scan(&rows).Error; err != nil {
		return savedTrace{}, fmt.Errorf("select trace context of saga %s: %w", id, err)
	}
	if len(rows) == 0 {
		return savedTrace{}, nil
	}
	return savedTrace{parent: rows[0].Traceparent, state: rows[0].Tracestate}, nil
}

// tracerOf returns the tracer of tp, or of OTel's global provider if tp is
// nil.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// startSpan starts an internal span of saga inst named "saga <what>".
func (o *Orchestrator) startSpan(ctx context.Context, what string, inst Instance, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	attrs = append(attrs, attrSagaID.String(inst.ID), attrDefinition.String(inst.Definition))
	return o.tracer.Start(ctx, "saga "+what, trace.WithAttributes(attrs...))
}

// stepAttrs describe the operation op of step, sent for the attempt-th time.
func stepAttrs(step, op string, attempt int) []attribute.KeyValue {
	return []attribute.KeyValue{attrStep.String(step), attrOperation.String(op), attrAttempt.Int(attempt)}
}

// endSpan records err, if any, on span, and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// statusAttrs describe where a transition left inst.
func statusAttrs(inst Instance) []attribute.KeyValue {
	attrs := []attribute.KeyValue{attrStatus.String(string(inst.Status))}
	if inst.Reason != "" {
		attrs = append(attrs, attrReason.String(inst.Reason))
	}
	return attrs
}
