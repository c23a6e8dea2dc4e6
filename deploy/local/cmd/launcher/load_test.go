package main

import (
	"testing"

	"github.com/microshop/microshop/loadtest"
)

// TestLoadScenariosSmoke runs every load scenario of loadtest/scenarios.json
// smoke-sized (seconds, its "smoke" phases) with our open-loop runner
// against the whole stack — PostgreSQL, Consul, the broker and every
// service — and wants each one's thresholds to hold, each judged on
// samples. The full-size runs are make load SCENARIO=… (docs/benchmarks.md).
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
			if !r.Passed() {
				t.Errorf("scenario %s breached a threshold", name)
			}
			for _, o := range r.Outcomes {
				if o.Samples == 0 {
					t.Errorf("%s %s had no sample: the smoke run judged nothing", o.Key(), o.Expression())
				}
			}
		})
	}
}
