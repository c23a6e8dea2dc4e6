package telemetry

import (
	"context"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// Spans carry what clients send — a path, a header — and a client may send
// bytes that are not UTF-8 (%FF in a path). OTLP encodes strings as protobuf
// strings, which must be UTF-8: one such attribute makes the whole batch
// fail to encode, and every span in it is lost. So the exporter is wrapped:
// invalid bytes become U+FFFD before export, as the OpenTelemetry
// specification allows for non-UTF-8 strings.

// utf8Exporter exports its spans through next with their strings made
// valid UTF-8.
type utf8Exporter struct{ next sdktrace.SpanExporter }

func (e utf8Exporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	var fixed []sdktrace.ReadOnlySpan // allocated only when a span needs it
	for i, s := range spans {
		if valid(s) {
			continue
		}
		if fixed == nil {
			fixed = append([]sdktrace.ReadOnlySpan(nil), spans...)
		}
		fixed[i] = utf8Span{s}
	}
	if fixed != nil {
		spans = fixed
	}
	return e.next.ExportSpans(ctx, spans)
}

func (e utf8Exporter) Shutdown(ctx context.Context) error { return e.next.Shutdown(ctx) }

// valid reports whether every string of s that comes from outside (its
// name, attributes, events and status) is UTF-8.
func valid(s sdktrace.ReadOnlySpan) bool {
	if !utf8.ValidString(s.Name()) || !utf8.ValidString(s.Status().Description) || !validAttrs(s.Attributes()) {
		return false
	}
	for _, e := range s.Events() {
		if !utf8.ValidString(e.Name) || !validAttrs(e.Attributes) {
			return false
		}
	}
	return true
}

func validAttrs(attrs []attribute.KeyValue) bool {
	for _, a := range attrs {
		if !utf8.ValidString(string(a.Key)) {
			return false
		}
		switch a.Value.Type() {
		case attribute.STRING:
			if !utf8.ValidString(a.Value.AsString()) {
				return false
			}
		case attribute.STRINGSLICE:
			for _, v := range a.Value.AsStringSlice() {
				if !utf8.ValidString(v) {
					return false
				}
			}
		}
	}
	return true
}

// utf8Span is a span whose strings are made valid UTF-8. Embedding the
// interface keeps every other method, and the SDK's unexported one.
type utf8Span struct{ sdktrace.ReadOnlySpan }

func (s utf8Span) Name() string { return toUTF8(s.ReadOnlySpan.Name()) }

func (s utf8Span) Attributes() []attribute.KeyValue { return fixAttrs(s.ReadOnlySpan.Attributes()) }

func (s utf8Span) Status() sdktrace.Status {
	st := s.ReadOnlySpan.Status()
	st.Description = toUTF8(st.Description)
	return st
}

func (s utf8Span) Events() []sdktrace.Event {
	events := append([]sdktrace.Event(nil), s.ReadOnlySpan.Events()...)
	for i := range events {
		events[i].Name = toUTF8(events[i].Name)
		events[i].Attributes = fixAttrs(events[i].Attributes)
	}
	return events
}

func fixAttrs(attrs []attribute.KeyValue) []attribute.KeyValue {
	out := make([]attribute.KeyValue, len(attrs))
	for i, a := range attrs {
		key := attribute.Key(toUTF8(string(a.Key)))
		switch a.Value.Type() {
		case attribute.STRING:
			out[i] = key.String(toUTF8(a.Value.AsString()))
		case attribute.STRINGSLICE:
			vs := a.Value.AsStringSlice()
			for j := range vs {
				vs[j] = toUTF8(vs[j])
			}
			out[i] = key.StringSlice(vs)
		default:
			out[i] = attribute.KeyValue{Key: key, Value: a.Value}
		}
	}
	return out
}

func toUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
