package saga_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/saga"
)

// TestOneTrace checks that a saga is one trace: started inside a caller's
// span, its commands, its replies and what Run does on its own after a
// deadline — which has no caller — are spans of the caller's trace, named
// by step and operation.
func TestOneTrace(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) { testOneTrace(t, b) })
	}
}

func testOneTrace(t *testing.T, b backend) {
	e := newEnv(t, openDB(t, b.newURL(t)), newClock())
	ctx, root := e.tracer.Start(t.Context(), "POST /orders")
	err := e.db.Transaction(func(tx *gorm.DB) error {
		return e.o.Start(ctx, tx, "checkout", "order-1", []byte(`{}`))
	})
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	// The replies come in consumers' spans of the same trace.
	replyCtx, consumer := e.tracer.Start(ctx, "process replies")
	if err := e.o.HandleReply(replyCtx, saga.Reply{SagaID: "order-1", Step: "reserve", Op: saga.OpAction, OK: true}); err != nil {
		t.Fatal(err)
	}
	consumer.End()
	// charge gets no reply: Run finds its deadline passed, in a context
	// without any span.
	e.clock.Advance(stepTimeout)
	if err := e.o.RunOnce(context.WithoutCancel(context.Background())); err != nil {
		t.Fatal(err)
	}

	var names []string
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range e.spans.Ended() {
		if s.SpanContext().TraceID() != root.SpanContext().TraceID() {
			t.Errorf("span %q is in trace %s, want the caller's %s", s.Name(), s.SpanContext().TraceID(), root.SpanContext().TraceID())
		}
		names = append(names, s.Name())
		byName[s.Name()] = s
	}
	want := []string{
		"saga action reserve", "saga start", "POST /orders", // a span ends after the ones inside it
		"saga action charge", "saga reply reserve", "process replies",
		"saga compensate charge", "saga deadline charge",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Fatalf("ended spans (-want +got):\n%s", diff)
	}
	for child, parent := range map[string]string{
		"saga start":             "POST /orders",
		"saga action reserve":    "saga start",
		"saga reply reserve":     "process replies",
		"saga action charge":     "saga reply reserve",
		"saga compensate charge": "saga deadline charge",
	} {
		if got, want := byName[child].Parent().SpanID(), byName[parent].SpanContext().SpanID(); got != want {
			t.Errorf("parent of %q = %s, want %q's %s", child, got, parent, want)
		}
	}
	if got := byName["saga deadline charge"].Parent().SpanID(); got != byName["saga start"].SpanContext().SpanID() {
		t.Errorf("parent of the deadline's span = %s, want the span Start saved, %s", got, byName["saga start"].SpanContext().SpanID())
	}
	// The step's duration, observed while the reply was applied in the
	// consumer's span, links to the trace.
	if !hasExemplar(t, e, "saga_step_duration_seconds", root.SpanContext().TraceID().String()) {
		t.Errorf("saga_step_duration_seconds has no exemplar with the trace id %s", root.SpanContext().TraceID())
	}
	wantAttrs := map[string][]attribute.KeyValue{
		"saga compensate charge": {attribute.String("saga.step", "charge"), attribute.String("saga.operation", "compensate"), attribute.Int("saga.attempt", 1)},
		"saga reply reserve":     {attribute.String("saga.reply.result", "applied"), attribute.String("saga.status", "RUNNING")},
		"saga deadline charge":   {attribute.String("saga.status", "COMPENSATING"), attribute.String("saga.reason", "charge: timed out")},
	}
	for name, attrs := range wantAttrs {
		got := attribute.NewSet(byName[name].Attributes()...)
		for _, a := range attrs {
			if v, ok := got.Value(a.Key); !ok || v != a.Value {
				t.Errorf("span %q: %s = %v, want %v", name, a.Key, v.String(), a.Value.String())
			}
		}
	}
}

// TestBarrierOnSpan checks that a participant's span says what the barrier
// made of a delivery: the first "proceed", the redelivery "duplicate".
func TestBarrierOnSpan(t *testing.T) {
	e := newEnv(t, openDB(t, "sqlite:"+filepath.Join(t.TempDir(), "participant.db")), newClock())
	p := saga.NewParticipant(e.db, "replies", func() {})
	d := saga.Delivery{Correlation: saga.Correlation{SagaID: "order-1", Step: "reserve", Op: saga.OpAction}, MessageID: "m-1"}
	var got []string
	for range 2 {
		ctx, span := e.tracer.Start(t.Context(), "process commands")
		if _, err := p.Pass(ctx, d, func(*gorm.DB, saga.Outcome) (saga.EncodeReply, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
		span.End()
		attrs := attribute.NewSet(e.spans.Ended()[len(e.spans.Ended())-1].Attributes()...)
		barrier, _ := attrs.Value("saga.barrier")
		step, _ := attrs.Value("saga.step")
		got = append(got, step.AsString()+" "+barrier.AsString())
	}
	if diff := cmp.Diff([]string{"reserve proceed", "reserve duplicate"}, got); diff != "" {
		t.Errorf("step and barrier on the two deliveries' spans (-want +got):\n%s", diff)
	}
}

// hasExemplar reports whether a bucket of the histogram name has an
// exemplar labelled with traceID.
func hasExemplar(t *testing.T, e *env, name, traceID string) bool {
	t.Helper()
	families, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, b := range m.GetHistogram().GetBucket() {
				for _, l := range b.GetExemplar().GetLabel() {
					if l.GetName() == "trace_id" && l.GetValue() == traceID {
						return true
					}
				}
			}
		}
	}
	return false
}
