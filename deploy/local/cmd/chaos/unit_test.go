package main

import (
	"encoding/base64"
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

// TestPlanMix: the order mix follows the brief's proportions, within a few
// points over 10,000 orders, and each order's plan depends only on the seed
// and its number.
func TestPlanMix(t *testing.T) {
	plenty, low := []string{"A", "B"}, []string{"LOW"}
	const n = 10000
	counts := map[string]int{}
	for i := range n {
		c := plan(42, i, plenty, low)
		switch {
		case c.sku == "LOW":
			counts["low stock"]++
		default:
			counts[c.card]++
		}
	}
	for kind, want := range map[string]float64{
		cardSucceeds: 0.70, cardDeclined: 0.10, cardInsufficient: 0.05, cardHangs: 0.05, "low stock": 0.10,
	} {
		if got := float64(counts[kind]) / n; got < want-0.02 || got > want+0.02 {
			t.Errorf("share of %s = %.3f, want %.2f ± 0.02", kind, got, want)
		}
	}
	if diff := cmp.Diff(plan(42, 17, plenty, low), plan(42, 17, plenty, low), cmp.AllowUnexported(checkout{})); diff != "" {
		t.Errorf("the same seed and number planned different orders:\n%s", diff)
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

func TestReasonClass(t *testing.T) {
	for reason, want := range map[string]string{
		"reserve-stock: insufficient stock of MUG-ENAMEL: 1 requested, 0 available": "reserve-stock: insufficient stock",
		"reserve-stock: timed out":           "reserve-stock: timed out",
		"charge-payment: card_declined":      "charge-payment: card_declined",
		"charge-payment: rejected: bad card": "charge-payment: rejected",
		"":                                   "(no reason)",
	} {
		if got := reasonClass(reason); got != want {
			t.Errorf("reasonClass(%q) = %q, want %q", reason, got, want)
		}
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

func TestTokenSubject(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"cus_alice","role":"customer"}`))
	tests := []struct {
		name, token, want string
		wantErr           bool
	}{
		{"subject", "h." + payload + ".s", "cus_alice", false},
		{"not a JWT", "abc", "", true},
		{"no subject", "h." + base64.RawURLEncoding.EncodeToString([]byte(`{}`)) + ".s", "", true},
		{"not base64", "h.!!!.s", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tokenSubject(tt.token)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("tokenSubject(%q) = %q, %v; want %q, error %t", tt.token, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
