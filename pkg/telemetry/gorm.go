package telemetry

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"io"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

// dbTracing is the GORM plugin of InstrumentDB: a client span around every
// statement, named and attributed as the GORM OpenTelemetry plugin
// (gorm.io/plugin/opentelemetry) does, without the statement's values.
//
// Why not that plugin: it finds the operation's name by running three
// regular expressions over the whole statement text (to strip comments
// anywhere in it), which took 4 to 5.5 % of order's, inventory's and
// payment's CPU in a checkout at saturation (docs/benchmarks.md, issue 15).
// Here the first word is read after leading blanks and comments only, which
// is where the operation is.
type dbTracing struct {
	tracer trace.Tracer
	// attrs are added to every span (the server's address and port).
	attrs []attribute.KeyValue
}

func (dbTracing) Name() string { return "microshop:tracing" }

// Initialize registers the span's start before and its end after each of
// GORM's statement callbacks.
func (p dbTracing) Initialize(db *gorm.DB) error {
	// GORM's processors and callbacks are unexported types.
	type registerer interface {
		Register(name string, fn func(*gorm.DB)) error
	}
	cb := db.Callback()
	for _, h := range []struct {
		name          string
		before, after registerer
		spanName      string
	}{
		{"create", cb.Create().Before("gorm:create"), cb.Create().After("gorm:create"), "gorm.Create"},
		{"query", cb.Query().Before("gorm:query"), cb.Query().After("gorm:query"), "gorm.Query"},
		{"update", cb.Update().Before("gorm:update"), cb.Update().After("gorm:update"), "gorm.Update"},
		{"delete", cb.Delete().Before("gorm:delete"), cb.Delete().After("gorm:delete"), "gorm.Delete"},
		{"row", cb.Row().Before("gorm:row"), cb.Row().After("gorm:row"), "gorm.Row"},
		{"raw", cb.Raw().Before("gorm:raw"), cb.Raw().After("gorm:raw"), "gorm.Raw"},
	} {
		if err := h.before.Register("tracing:before_"+h.name, p.before(h.spanName)); err != nil {
			return err
		}
		if err := h.after.Register("tracing:after_"+h.name, p.after); err != nil {
			return err
		}
	}
	return nil
}

// spanContext is the statement's context while its span is open: the span's
// context, and the caller's, which after restores. A GORM statement's
// context outlives the statement on a chained *gorm.DB.
type spanContext struct {
	context.Context
	parent context.Context
}

func (p dbTracing) before(spanName string) func(*gorm.DB) {
	return func(tx *gorm.DB) {
		parent := tx.Statement.Context
		ctx, _ := p.tracer.Start(parent, spanName, trace.WithSpanKind(trace.SpanKindClient))
		tx.Statement.Context = spanContext{ctx, parent}
	}
}

func (p dbTracing) after(tx *gorm.DB) {
	sc, ok := tx.Statement.Context.(spanContext)
	if !ok {
		return // no span was started (a callback registered after ours)
	}
	tx.Statement.Context = sc.parent
	span := trace.SpanFromContext(sc.Context)
	if !span.IsRecording() {
		return
	}
	defer span.End()
	query := tx.Statement.SQL.String()
	operation := firstWord(query)
	attrs := append(make([]attribute.KeyValue, 0, len(p.attrs)+6), p.attrs...)
	attrs = append(attrs, semconv.DBQueryText(query), semconv.DBOperationName(operation))
	if sys := dbSystemName(tx.Dialector.Name()); sys != "" {
		attrs = append(attrs, semconv.DBSystemNameKey.String(sys))
	}
	if table := tx.Statement.Table; table != "" {
		summary := operation + " " + table
		attrs = append(attrs, semconv.DBCollectionName(table), semconv.DBQuerySummary(summary))
		span.SetName(summary)
	}
	if tx.Statement.RowsAffected != -1 {
		attrs = append(attrs, attribute.Int64("db.rows_affected", tx.Statement.RowsAffected))
	}
	span.SetAttributes(attrs...)
	if err := tx.Error; err != nil && !expectedDBError(err) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
}

// expectedDBError reports errors that are answers rather than failures: no
// row found, the end of the rows.
func expectedDBError(err error) bool {
	return errors.Is(err, gorm.ErrRecordNotFound) || errors.Is(err, sql.ErrNoRows) ||
		errors.Is(err, driver.ErrSkip) || errors.Is(err, io.EOF)
}

// dbSystemName is the db.system.name of a GORM dialector's name.
func dbSystemName(dialector string) string {
	switch dialector {
	case "postgres":
		return "postgresql"
	case "sqlite":
		return "sqlite"
	}
	return ""
}

// firstWord is the operation of a statement, lower case: its first word
// after blanks, semicolons and comments.
func firstWord(query string) string {
	s := query
	for {
		s = strings.TrimLeft(s, " \t\r\n;")
		switch {
		case strings.HasPrefix(s, "--"):
			_, s, _ = strings.Cut(s, "\n")
			continue
		case strings.HasPrefix(s, "/*"):
			_, s, _ = strings.Cut(s, "*/")
			continue
		}
		break
	}
	end := 0
	for end < len(s) && isWordByte(s[end]) {
		end++
	}
	return strings.ToLower(s[:end])
}

// isWordByte reports whether b is in a word, as \w has it: an ASCII letter,
// digit or underscore.
func isWordByte(b byte) bool {
	return b == '_' || 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}
