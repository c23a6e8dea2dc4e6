// Package prometheus_test checks the Prometheus configuration and rules of
// this directory with promtool.
package prometheus_test

import (
	"path/filepath"
	"testing"

	"github.com/microshop/microshop/observability/internal/promtool"
)

func TestConfigs(t *testing.T) {
	for _, file := range []string{"compose.yml", "native.yml"} {
		t.Run(file, func(t *testing.T) {
			promtool.Run(t, ".", "check", "config", file)
		})
	}
}

func TestRules(t *testing.T) {
	rules, err := filepath.Glob("rules/*.yml")
	if err != nil || len(rules) == 0 {
		t.Fatalf("no rule files found: %v", err)
	}
	promtool.Run(t, ".", append([]string{"check", "rules"}, rules...)...)
}

// TestRuleUnitTests runs the rules' unit tests in tests/.
func TestRuleUnitTests(t *testing.T) {
	tests, err := filepath.Glob("tests/*_test.yml")
	if err != nil || len(tests) == 0 {
		t.Fatalf("no rule tests found: %v", err)
	}
	promtool.Run(t, ".", append([]string{"test", "rules"}, tests...)...)
}
