package main

import (
	"testing"

	"github.com/microshop/microshop/loadtest"
)

// TestLoadScenariosSmoke runs every load scenario of loadtest/scenarios.json
// smoke-sized (seconds, its "smoke" phases) with our open-loop runner
// against the whole stack — PostgreSQL, Consul, the broker and every
// service. Every threshold must be judged on samples, and every threshold
// on failures and outcomes (http_req_failed, checkout_confirmed) must
// hold. The latency thresholds' verdicts are logged, not asserted: speed
// is for benchmarks, not for tests on a shared machine (a few seconds of
// samples make a p99 the slowest request); make load enforces them all.
func TestLoadScenariosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the stack; run without -short")
	}
	defs, err := loadtest.Load()
	if err != nil {
		t.Fatal(err)
	}
	st := startStack(t, stackOptions{replicas: 1})
	for _, name := range defs.ScenarioNames() {
		t.Run(name, func(t *testing.T) {
			r, err := loadtest.Run(t.Context(), defs, name, loadtest.Options{BaseURL: st.gateway, Smoke: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(r)
			for _, o := range r.Outcomes {
				switch {
				case o.Samples == 0:
					t.Errorf("%s %s had no sample: the smoke run judged nothing", o.Key(), o.Expression())
				case o.Passed:
				case o.Metric == loadtest.MetricDuration || o.Metric == loadtest.MetricCompletion:
					t.Logf("latency threshold %s %s breached (%.2f ms): logged, not asserted", o.Key(), o.Expression(), o.Got)
				default:
					t.Errorf("%s %s breached: got %v", o.Key(), o.Expression(), o.Got)
				}
			}
		})
	}
}
