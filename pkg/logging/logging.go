// Package logging builds the structured logger every microshop process uses:
// log/slog writing one JSON object per line, tagged with the service name, so
// the native launcher, Docker and any log shipper can read it the same way.
// A record logged with a context inside a span carries the span's trace_id
// and span_id ([TraceHandler]), so the lines of one checkout can be found in
// every process, and its trace in Jaeger.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger writing to w at level and above, with a
// "service" attribute on every record, and trace_id and span_id on those
// logged with a context holding a span (log.InfoContext(ctx, ...)).
func New(w io.Writer, service string, level slog.Level) *slog.Logger {
	h := TraceHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	return slog.New(h).With(slog.String("service", service))
}
