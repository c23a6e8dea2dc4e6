package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlagsRejects(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no orders", []string{"-orders", "0"}, "-orders"},
		{"negative kills", []string{"-kills", "-1"}, "-kills"},
		{"no concurrency", []string{"-concurrency", "0"}, "-concurrency"},
		{"probability above 1", []string{"-crash-probability", "1.5"}, "-crash-probability"},
		{"quiet timeout shorter than the settle window", []string{"-quiet-timeout", "59s"}, "-quiet-timeout"},
		{"zero kill interval", []string{"-kill-interval", "0s"}, "-kill-interval"},
		{"argument", []string{"extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("parseFlags(%q) = %v, want an error mentioning %s", tt.args, err, tt.want)
			}
		})
	}
}

func TestLogCounts(t *testing.T) {
	c := newLogCounts()
	for _, l := range []struct{ name, text string }{
		{"inventory-1", `{"level":"INFO","msg":"saga barrier outcome","barrier":"duplicate","step":"reserve-stock"}`},
		{"inventory-2", `{"level":"INFO","msg":"saga barrier outcome","barrier":"duplicate"}`},
		{"payment-1", `{"level":"INFO","msg":"saga barrier outcome","barrier":"null compensation"}`},
		{"order-2", `{"level":"DEBUG","msg":"saga reply ignored","result":"stale"}`},
		{"order-1", `{"level":"DEBUG","msg":"saga reply ignored","result":"unknown"}`},
		{"order-1", `{"level":"WARN","msg":"chaos: crashing after handle, before commit"}`},
		{"order-1", `{"level":"INFO","msg":"saga barrier outcome","barr`}, // cut short by a kill
		{"gateway", `{"level":"ERROR","msg":"http request","status":502}`},
		{"launcher", `started order-1 pid=7`},
	} {
		c.observe(l.name, l.text)
	}
	barrier, stale := c.duplicates()
	if barrier != 2 || stale != 1 {
		t.Errorf("duplicates() = %d barrier, %d stale; want 2, 1", barrier, stale)
	}
	want := map[string]map[string]int{"inventory": {"duplicate": 2}, "payment": {"null compensation": 1}}
	if diff := cmp.Diff(want, c.barrier); diff != "" {
		t.Errorf("barrier outcomes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]int{"order": 1}, c.crashes); diff != "" {
		t.Errorf("crashes (-want +got):\n%s", diff)
	}
	if c.failures != 1 {
		t.Errorf("error lines = %d, want 1", c.failures)
	}
}

// TestSettleWindowCoversRetries: the settle window is at least the longest
// retry backoff of the stack, the orchestrator's cap on compensation
// re-sends, so that nothing still waiting to be retried escapes the
// snapshot.
func TestSettleWindowCoversRetries(t *testing.T) {
	retryMax, err := time.ParseDuration(sagaRetryMax)
	if err != nil {
		t.Fatal(err)
	}
	if settleWindow < retryMax {
		t.Errorf("settleWindow = %s, shorter than ORDER_SAGA_RETRY_MAX %s", settleWindow, retryMax)
	}
}
