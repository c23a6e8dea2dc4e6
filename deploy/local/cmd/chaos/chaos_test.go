package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/servicetest"
)

// programs are the packages the chaos run starts.
var programs = []string{
	"github.com/microshop/microshop/services/gateway/cmd/gateway",
	"github.com/microshop/microshop/services/order/cmd/order",
	"github.com/microshop/microshop/services/inventory/cmd/inventory",
	"github.com/microshop/microshop/services/payment/cmd/payment",
	"github.com/microshop/microshop/services/psp/cmd/psp",
	"github.com/microshop/microshop/deploy/local/cmd/broker",
}

// TestChaosCISized builds the programs and runs the harness CI-sized: 500
// checkouts and 20 kills. The run itself fails on any violation, on an
// order not placed, on a stack that did not settle, on a table read empty
// and on a fault kind that never happened; the summary rows below restate
// the figures a reader looks for.
func TestChaosCISized(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: builds and runs the whole stack under faults; run without -short")
	}
	consul := servicetest.Tool(t, "consul", "CONSUL_BIN", "make .run/tools/consul")
	dir := worldReadableTempDir(t) // the postgres user must reach the cluster under it
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"}, programs...)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	var out bytes.Buffer
	// A crash probability ten times make chaos's: at 0.002 a run of 500
	// checkouts had a single crash after handle, and the run fails without one.
	err := run(t.Context(), []string{"-orders", "500", "-kills", "20", "-concurrency", "16", "-seed", "7",
		"-crash-probability", "0.02", "-dir", filepath.Join(dir, "run"), "-bin", bin, "-consul", consul}, &out)
	summary := out.String()
	t.Logf("chaos output:\n%s", summary)
	if err != nil {
		if log, rerr := os.ReadFile(filepath.Join(dir, "run", "chaos.log")); rerr == nil {
			t.Logf("tail of chaos.log:\n%s", tail(string(log), 200))
		}
		t.Fatalf("chaos run: %v", err)
	}
	for _, want := range []struct {
		row  string
		test func(int) bool
		what string
	}{
		{"violations", func(n int) bool { return n == 0 }, "0"},
		{"fault: kills (SIGKILL)", func(n int) bool { return n == 20 }, "20"},
		{"orders placed (ids answered)", func(n int) bool { return n > 500 }, "more than 500 (with the warm-up)"},
		{"orders not placed", func(n int) bool { return n == 0 }, "0"},
		{"confirmed", func(n int) bool { return n > 0 }, "more than 0"},
		{"fault: injected crashes after handle", func(n int) bool { return n > 0 }, "more than 0"},
		{"fault: redeliveries seen by a barrier", func(n int) bool { return n > 0 }, "more than 0"},
		{"fault: refunds at the PSP", func(n int) bool { return n > 0 }, "more than 0"},
		{"fault: ambiguous (hanging-card) charges", func(n int) bool { return n > 0 }, "more than 0"},
		{"fault: insufficient-stock cancellations", func(n int) bool { return n > 0 }, "more than 0"},
	} {
		if got := summaryValue(t, summary, want.row); !want.test(got) {
			t.Errorf("%s = %d, want %s", want.row, got, want.what)
		}
	}
}

// summaryValue reads the integer of a row of the summary table.
func summaryValue(t *testing.T, summary, row string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(row) + ` +(-?\d+)$`).FindStringSubmatch(summary)
	if m == nil {
		t.Fatalf("no row %q in the summary", row)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// worldReadableTempDir is t.TempDir for directories other users must enter
// (t.TempDir's are private to the test's user).
func worldReadableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "microshop-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
