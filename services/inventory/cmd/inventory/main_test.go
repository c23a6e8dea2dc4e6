package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/servicetest"
)

// TestRun wires the whole service in-process against real SQLite and
// PostgreSQL databases and a real Kafka-protocol broker.
func TestRun(t *testing.T) {
	broker := kafkatest.Start(t)
	cluster := pgtest.Start(t)
	databases := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "inventory.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
	for name, newDatabaseURL := range databases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{
				"INVENTORY_HTTP_ADDR":     servicetest.FreeAddr(t),
				"INVENTORY_DATABASE_URL":  newDatabaseURL(t),
				"INVENTORY_KAFKA_BROKERS": broker,
			}
			svc := servicetest.Start(t, run, env, "INVENTORY_HTTP_ADDR")

			resp, err := http.Get(svc.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			var got health.Report
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := health.Report{Status: health.StatusReady, Checks: map[string]health.Result{
				"database": {Status: health.StatusUp}, "kafka": {Status: health.StatusUp},
			}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("readiness mismatch (-want +got):\n%s", diff)
			}

			if err := svc.Stop(); err != nil {
				t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
			}
			if logs := svc.Logs(); !strings.Contains(logs, `"msg":"http server stopped"`) {
				t.Errorf("logs do not show a graceful HTTP stop:\n%s", logs)
			}
		})
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	tests := []struct {
		key, value string
	}{
		{"INVENTORY_HTTP_ADDR", "nowhere"},
		{"INVENTORY_DATABASE_URL", "mysql://db"},
		{"INVENTORY_KAFKA_BROKERS", "a:1,"},
		{"INVENTORY_SHUTDOWN_TIMEOUT", "soon"},
		{"INVENTORY_LOG_LEVEL", "chatty"},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			getenv := func(k string) string {
				if k == tt.key {
					return tt.value
				}
				return ""
			}
			err := run(t.Context(), getenv, &strings.Builder{})
			if err == nil || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("run = %v, want an error naming %s", err, tt.key)
			}
		})
	}
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "INVENTORY_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}
