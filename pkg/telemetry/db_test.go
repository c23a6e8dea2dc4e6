package telemetry_test

import (
	"log/slog"
	neturl "net/url"
	"testing"

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
