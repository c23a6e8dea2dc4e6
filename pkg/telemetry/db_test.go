package telemetry_test

import (
	"log/slog"
	neturl "net/url"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
)

// TestInstrumentDB checks, on a real PostgreSQL, that every statement of an
// instrumented database is a client span with the operation, the statement
// without its values, and the server's address and port (read once from the
// connection string, not by the plugin for every statement).
func TestInstrumentDB(t *testing.T) {
	dsn := pgtest.NewDatabase(t, pgtest.Start(t))
	db, err := database.Open(t.Context(), dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	tel := start(t, nil)
	spans := tracetest.NewSpanRecorder()
	tel.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	if err := tel.InstrumentDB(db.DB); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.DB.WithContext(t.Context()).Raw("SELECT 1 + ?", 41).Scan(&n).Error; err != nil || n != 42 {
		t.Fatalf("query: %d, %v", n, err)
	}

	ended := spans.Ended()
	if len(ended) != 1 {
		t.Fatalf("%d spans, want 1", len(ended))
	}
	got := map[string]string{}
	for _, kv := range ended[0].Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	u, err := neturl.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	host, port := u.Hostname(), u.Port()
	for key, want := range map[string]string{
		"server.address": host, "server.port": port, "db.operation.name": "select",
		"db.query.text": "SELECT 1 + $1", "db.system.name": "postgresql",
	} {
		if got[key] != want {
			t.Errorf("span attribute %s = %q, want %q (all: %v)", key, got[key], want, got)
		}
	}
}

// TestInstrumentDBNamesSpans checks the span of a statement on a table: named
// by its operation and table, with the rows it changed, and an error span
// for a statement that failed.
func TestInstrumentDBNamesSpans(t *testing.T) {
	db, err := database.Open(t.Context(), pgtest.NewDatabase(t, pgtest.Start(t)), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.DB.Exec("CREATE TABLE widgets (id INT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	tel := start(t, nil)
	spans := tracetest.NewSpanRecorder()
	tel.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	if err := tel.InstrumentDB(db.DB); err != nil {
		t.Fatal(err)
	}
	widget := map[string]any{"id": 1}
	if err := db.DB.WithContext(t.Context()).Table("widgets").Create(widget).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.DB.WithContext(t.Context()).Table("widgets").Create(widget).Error; err == nil {
		t.Fatal("second insert of the same id: no error")
	}

	ended := spans.Ended()
	if len(ended) != 2 {
		t.Fatalf("%d spans, want 2", len(ended))
	}
	for i, s := range ended {
		got := map[string]string{}
		for _, kv := range s.Attributes() {
			got[string(kv.Key)] = kv.Value.String()
		}
		if s.Name() != "insert widgets" {
			t.Errorf("span %d name = %q, want %q", i, s.Name(), "insert widgets")
		}
		want := map[string]string{"db.collection.name": "widgets", "db.query.summary": "insert widgets", "db.operation.name": "insert"}
		if i == 0 {
			want["db.rows_affected"] = strconv.Itoa(1)
		}
		for key, w := range want {
			if got[key] != w {
				t.Errorf("span %d attribute %s = %q, want %q (all: %v)", i, key, got[key], w, got)
			}
		}
		if wantCode := []codes.Code{codes.Unset, codes.Error}[i]; s.Status().Code != wantCode {
			t.Errorf("span %d status = %v, want %v", i, s.Status().Code, wantCode)
		}
	}
}
