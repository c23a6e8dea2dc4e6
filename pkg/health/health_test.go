package health_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/health"
)

func up(context.Context) error   { return nil }
func down(context.Context) error { return errors.New("connection refused") }

// hangs until its context ends, as a dead TCP peer would.
func hangs(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }

func TestReady(t *testing.T) {
	tests := []struct {
		name     string
		checks   map[string]health.CheckFunc
		wantCode int
		want     health.Report
	}{
		{
			name:     "no dependencies is ready",
			wantCode: http.StatusOK,
			want:     health.Report{Status: health.StatusReady, Checks: map[string]health.Result{}},
		},
		{
			name:     "all up",
			checks:   map[string]health.CheckFunc{"database": up, "kafka": up},
			wantCode: http.StatusOK,
			want: health.Report{Status: health.StatusReady, Checks: map[string]health.Result{
				"database": {Status: "up"}, "kafka": {Status: "up"},
			}},
		},
		{
			name:     "one down names it",
			checks:   map[string]health.CheckFunc{"database": up, "kafka": down},
			wantCode: http.StatusServiceUnavailable,
			want: health.Report{Status: health.StatusNotReady, Checks: map[string]health.Result{
				"database": {Status: "up"}, "kafka": {Status: "down", Error: "connection refused"},
			}},
		},
		{
			name:     "a hanging check times out",
			checks:   map[string]health.CheckFunc{"database": hangs},
			wantCode: http.StatusServiceUnavailable,
			want: health.Report{Status: health.StatusNotReady, Checks: map[string]health.Result{
				"database": {Status: "down", Error: context.DeadlineExceeded.Error()},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := health.New(20 * time.Millisecond)
			for name, check := range tt.checks {
				c.Add(name, check)
			}
			checkReady(t, c, tt.wantCode, tt.want)
		})
	}
}

func TestReadyWhileDraining(t *testing.T) {
	c := health.New(20 * time.Millisecond)
	c.Add("database", up)
	c.Drain()
	// Not ready even when every check is up.
	checkReady(t, c, http.StatusServiceUnavailable, health.Report{Status: health.StatusDraining, Checks: map[string]health.Result{
		"database": {Status: "up"},
	}})
}

// checkReady fails unless c.Ready answers wantCode with the report want.
func checkReady(t *testing.T, c *health.Checks, wantCode int, want health.Report) {
	t.Helper()
	rec := httptest.NewRecorder()
	c.Ready(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if rec.Code != wantCode {
		t.Errorf("status = %d, want %d", rec.Code, wantCode)
	}
	var got health.Report
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("decode %q: %v", rec.Body.String(), err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report mismatch (-want +got):\n%s", diff)
	}
}

func TestLive(t *testing.T) {
	c := health.New(0)
	c.Add("database", down) // liveness must not depend on dependencies
	c.Drain()
	rec := httptest.NewRecorder()
	c.Live(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("status = %d, want 200", rec.Code)
	}
	if got, want := rec.Body.String(), "{\"status\":\"up\"}\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}
