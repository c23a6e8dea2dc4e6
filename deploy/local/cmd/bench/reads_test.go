package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestMeasureReads runs the reads load against a stand-in gateway that
// fails every tenth request: every request of the window is counted once,
// as answered or as an error, and the report says so.
func TestMeasureReads(t *testing.T) {
	var served atomic.Int64
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != readsPath {
			http.NotFound(w, r)
			return
		}
		if served.Add(1)%10 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"items":[]}`))
	}))
	defer gateway.Close()

	o := options{concurrency: 4, warmup: 50 * time.Millisecond, duration: 300 * time.Millisecond, dir: t.TempDir()}
	r, err := measureReads(t.Context(), o, os.Getpid(), gateway.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.latencies) == 0 || r.errors == 0 {
		t.Fatalf("%d answered, %d errors; want both (one request in ten fails)", len(r.latencies), r.errors)
	}
	if window := len(r.latencies) + r.errors; int64(window) > served.Load() {
		t.Errorf("%d requests counted in the window, more than the %d served", window, served.Load())
	}
	var out strings.Builder
	r.print(&out)
	for _, want := range []string{"requests/s answered 200", "errors", "p99", "CPU µs per request: bench"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
