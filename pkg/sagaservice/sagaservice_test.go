package sagaservice_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/sagaservice"
	"github.com/microshop/microshop/pkg/servicetest"
)

var schema = fstest.MapFS{"00001_notes.sql": {Data: []byte("-- +goose Up\nCREATE TABLE notes (id TEXT PRIMARY KEY);\n")}}

// TestService opens a service's shared parts on SQLite and a real
// Kafka-protocol broker, runs them with a task of its own and a consumer,
// and checks what each part is for: the schemas, the topics, the consumer,
// readiness, the metrics (Go collectors included) and the graceful stop.
func TestService(t *testing.T) {
	broker := kafkatest.Start(t)
	getenv := func(k string) string {
		return map[string]string{
			"SVC_HTTP_ADDR":     servicetest.FreeAddr(t),
			"SVC_DATABASE_URL":  "sqlite:" + filepath.Join(t.TempDir(), "svc.db"),
			"SVC_KAFKA_BROKERS": broker,
		}[k]
	}
	env := config.New(getenv, "SVC_")
	cfg := sagaservice.ReadConfig(env, "svc", "127.0.0.1:0")
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	var migrated atomic.Bool
	spec := sagaservice.Spec{
		Name: "svc", Migrations: schema, Partitions: 2, Topics: []string{"svc.commands", "svc.commands.dlq"},
		Migrate: func(context.Context, *database.DB, *slog.Logger) error { migrated.Store(true); return nil },
	}
	log := slog.New(slog.DiscardHandler)
	svc, err := sagaservice.Open(t.Context(), spec, cfg, getenv, log)
	if err != nil {
		t.Fatal(err)
	}
	if !migrated.Load() {
		t.Error("Spec.Migrate was not called")
	}
	for _, table := range []string{"notes", "outbox"} {
		if !svc.DB.Migrator().HasTable(table) {
			t.Errorf("table %s missing after Open", table)
		}
	}
	handled := make(chan string, 1)
	err = svc.Consume("svc.commands", "svc.commands.dlq", func(_ context.Context, msg kafka.Message) error {
		handled <- string(msg.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Consume("svc.commands", "svc.commands.dlq", nil); err == nil {
		t.Error("a second Consume succeeded, want an error")
	}

	ctx, stop := context.WithCancel(context.Background())
	taskRan := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- svc.Run(ctx, lifecycle.Task{Name: "own task", Run: func(ctx context.Context) error {
			close(taskRan)
			<-ctx.Done()
			return nil
		}})
	}()
	<-taskRan

	w := messaging.NewWriter(messaging.Config{Brokers: []string{broker}, ClientID: "test"})
	defer w.Close()
	if err := w.WriteMessages(t.Context(), kafka.Message{Topic: "svc.commands", Key: []byte("k"), Value: []byte("hello")}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-handled:
		if got != "hello" {
			t.Errorf("consumer handled %q, want hello", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer handled nothing within 30s")
	}

	base := "http://" + cfg.HTTP.Addr
	if body := get(t, base+"/readyz"); !strings.Contains(body, `"database"`) || !strings.Contains(body, `"kafka"`) {
		t.Errorf("/readyz = %s, want the database and kafka checks", body)
	}
	metrics := get(t, base+"/metrics")
	for _, family := range []string{"go_goroutines", "process_cpu_seconds_total", "outbox_", "messaging_"} {
		if !strings.Contains(metrics, family) {
			t.Errorf("/metrics has no %s", family)
		}
	}

	stop()
	if err := <-done; err != nil {
		t.Errorf("Run after a graceful stop = %v, want nil", err)
	}
	if err := svc.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
}

// TestOpenClosesOnError checks that Open returns the error of the part that
// failed (and closes, on the way, the database it had opened).
func TestOpenClosesOnError(t *testing.T) {
	errMigrate := errors.New("migrate failed")
	cfg := sagaservice.Config{DatabaseURL: "sqlite:" + filepath.Join(t.TempDir(), "svc.db")}
	spec := sagaservice.Spec{Name: "svc", Migrations: schema,
		Migrate: func(context.Context, *database.DB, *slog.Logger) error { return errMigrate }}
	_, err := sagaservice.Open(t.Context(), spec, cfg, func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if !errors.Is(err, errMigrate) {
		t.Fatalf("Open error = %v, want the migration's", err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return string(body)
}
