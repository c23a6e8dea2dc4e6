package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCountersSumsOverOtherLabels(t *testing.T) {
	text := `# HELP outbox_published_total Messages the broker acknowledged.
# TYPE outbox_published_total counter
outbox_published_total 42
# HELP messaging_consumed_total Messages consumed and committed.
# TYPE messaging_consumed_total counter
messaging_consumed_total{outcome="ok",topic="inventory.replies"} 10
messaging_consumed_total{outcome="retried",topic="inventory.replies"} 2
messaging_consumed_total{outcome="ok",topic="payment.replies"} 7
# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 12
`
	got, err := parseCounters(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	want := counters{
		"outbox_published_total":   {"": 42},
		"messaging_consumed_total": {"inventory.replies": 12, "payment.replies": 7},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseCounters (-want +got):\n%s", diff)
	}
}

func TestParseCountersRejectsGarbage(t *testing.T) {
	if _, err := parseCounters(strings.NewReader("outbox_published_total{ 1\n")); err == nil {
		t.Error("parseCounters of a broken line = nil error, want one")
	}
}

func TestCountersMinus(t *testing.T) {
	before := counters{"messaging_consumed_total": {"a": 5}}
	after := counters{"messaging_consumed_total": {"a": 8, "b": 2}, "outbox_published_total": {"": 4}}
	want := counters{"messaging_consumed_total": {"a": 3, "b": 2}, "outbox_published_total": {"": 4}}
	if diff := cmp.Diff(want, after.minus(before)); diff != "" {
		t.Errorf("minus (-want +got):\n%s", diff)
	}
}

func TestCountersAddSumsReplicas(t *testing.T) {
	sum := counters{}
	sum.add(counters{"messaging_consumed_total": {"a": 2, "b": 1}})
	sum.add(counters{"messaging_consumed_total": {"a": 3}, "outbox_published_total": {"": 4}})
	want := counters{"messaging_consumed_total": {"a": 5, "b": 1}, "outbox_published_total": {"": 4}}
	if diff := cmp.Diff(want, sum); diff != "" {
		t.Errorf("sum of two replicas (-want +got):\n%s", diff)
	}
}

func TestServicePorts(t *testing.T) {
	order, gateway := service{"order", 1, true}, service{"gateway", 0, false}
	if got, want := order.ports(20000, 3), []int{20001, 20101, 20201}; !slices.Equal(got, want) {
		t.Errorf("order's ports with 3 replicas = %v, want %v", got, want)
	}
	if got, want := gateway.ports(20000, 3), []int{20000}; !slices.Equal(got, want) {
		t.Errorf("the gateway's ports with 3 replicas = %v, want %v (one gateway)", got, want)
	}
}

func TestKind(t *testing.T) {
	tests := []struct{ query, want string }{
		{"SELECT o.seq FROM outbox AS o", "SELECT"},
		{"  insert INTO outbox (id) VALUES ($1)", "INSERT"},
		{"UPDATE outbox SET sent_at = $1", "UPDATE"},
		{"DELETE FROM outbox WHERE seq IN ($1)", "DELETE"},
		{"begin", "BEGIN/COMMIT"},
		{"COMMIT", "BEGIN/COMMIT"},
		{"SAVEPOINT sp1", "BEGIN/COMMIT"},
		{"WITH heads AS MATERIALIZED ( SELECT o.key FROM outbox AS o ) SELECT m.seq FROM outbox AS m", "SELECT"},
		{"WITH gone AS (DELETE FROM t RETURNING id) INSERT INTO log SELECT id FROM gone", "INSERT"},
		{"VACUUM outbox", "other"},
		{"", "other"},
	}
	for _, tt := range tests {
		if got := kind(tt.query); got != tt.want {
			t.Errorf("kind(%q) = %q, want %q", tt.query, got, tt.want)
		}
	}
}

// TestCostPrint checks the per-saga arithmetic on figures worked out by
// hand: 4 sagas.
func TestCostPrint(t *testing.T) {
	c := &cost{
		sagas:    4,
		cpu:      []cpuShare{{"postgres", 0.02}, {"order", 0.01}},
		counters: map[string]counters{"order": {"outbox_published_total": {"": 12}, "messaging_consumed_total": {"inventory.replies": 8}}},
		xacts:    xacts{"orderdb": {commits: 20, rollbacks: 2}},
		stmts: []statement{
			{database: "orderdb", query: "BEGIN", calls: 20},
			{database: "orderdb", query: "SELECT 1", calls: 40, execMS: 2, rows: 40},
		},
		topN: 1,
	}
	var b strings.Builder
	c.print(&b)
	out := b.String()
	for _, want := range []string{
		"CPU µs: postgres 5000, order 2500; total 7500",
		"outbox_published_total): order 3.00; total 3.00",
		"order 2.00 (inventory.replies 2.00); total 2.00",
		"orderdb           5.00      0.50       15.00        10.00         0.00         0.00         0.00         5.00         0.00",
		"top 1 statements by calls",
		"top 1 statements by execution time",
		"10.00   0.500   10.00  orderdb     SELECT 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q; got:\n%s", want, out)
		}
	}
}

func TestAdminEnvGivesEveryServiceItsOwnAddress(t *testing.T) {
	env, addrs := adminEnv(30000)
	wantEnv := []string{
		"GATEWAY_ADMIN_ADDR=127.0.0.1:30000",
		"ORDER_ADMIN_ADDR=127.0.0.1:30001",
		"INVENTORY_ADMIN_ADDR=127.0.0.1:30002",
		"PAYMENT_ADMIN_ADDR=127.0.0.1:30003",
		"PSP_ADMIN_ADDR=127.0.0.1:30004",
	}
	if diff := cmp.Diff(wantEnv, env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if got, want := addrs["psp"], "127.0.0.1:30004"; got != want {
		t.Errorf("addrs[psp] = %q, want %q", got, want)
	}
}
