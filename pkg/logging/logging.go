// Package logging builds the structured logger every microshop process uses:
// log/slog writing one JSON object per line, tagged with the service name, so
// the native launcher, Docker and any log shipper can read it the same way.
package logging

import (
	"io"
	"log/slog"
)

// New returns a JSON logger writing to w at level and above, with a
// "service" attribute on every record.
func New(w io.Writer, service string, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(h).With(slog.String("service", service))
}
