package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/microshop/microshop/pkg/logging"
)

func TestNewWritesJSONWithServiceAndLevel(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "order", slog.LevelInfo)
	log.Debug("hidden")
	log.Info("order placed", slog.String("order_id", "o-1"))

	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("want exactly one JSON line, got %q: %v", buf.String(), err)
	}
	delete(got, "time")
	want := map[string]any{"level": "INFO", "msg": "order placed", "service": "order", "order_id": "o-1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("record mismatch (-want +got):\n%s", diff)
	}
}

func TestTraceIDsInsideASpan(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, "order", slog.LevelInfo)
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("test").Start(t.Context(), "handle")
	log.InfoContext(ctx, "inside")
	span.End()
	log.InfoContext(t.Context(), "outside")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	type ids struct{ TraceID, SpanID string }
	var got [2]ids
	for i, line := range lines {
		var rec struct {
			TraceID string `json:"trace_id"`
			SpanID  string `json:"span_id"`
		}
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		got[i] = ids{rec.TraceID, rec.SpanID}
	}
	want := [2]ids{{span.SpanContext().TraceID().String(), span.SpanContext().SpanID().String()}, {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ids of the lines inside and outside the span (-want +got):\n%s", diff)
	}
}
