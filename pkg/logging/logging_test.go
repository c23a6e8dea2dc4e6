package logging_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

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
