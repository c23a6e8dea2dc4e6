// Package promtool runs Prometheus' promtool for the tests of this module.
package promtool

import (
	"os"
	"os/exec"
	"testing"
)

// Run runs promtool with args in dir and fails t with its output if it
// fails. Without promtool (make test installs it from Debian's prometheus
// package) it skips t, or fails it under CI.
func Run(t *testing.T, dir string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("promtool not installed (apt-get install prometheus; set CI=true to fail instead): %v", err)
		}
		t.Fatalf("promtool not installed: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
}
