package labs

import (
	"math"
	"strings"
	"testing"
	"time"
)

// TestJudgeOverload checks lab 3's verdict on histories of the gateway
// shaped as a learner leaves them; the end-to-end proof on a real stack
// is TestLabsObserved (deploy/local/cmd/launcher).
func TestJudgeOverload(t *testing.T) {
	at := func(s int) time.Time { return time.Date(2026, 12, 6, 18, 0, s, 0, time.UTC) }
	idle := func(s int) overloadPoint {
		return overloadPoint{at: at(s), rate: 0.2, limitMax: 20, limitMin: 20, hasLimit: true, p99: 0.01, p99Served: 0.01}
	}
	// off: overloaded without a limiter; p99Served in seconds.
	off := func(s int, p99Served float64) overloadPoint {
		return overloadPoint{at: at(s), rate: 300, hasLimit: true, p99: 5, p99Served: p99Served}
	}
	// on: as busy, the limiter refusing.
	on := func(s int, p99Served float64) overloadPoint {
		return overloadPoint{at: at(s), rate: 300, rejected: 3000, shed: 3000, limitMax: 20, limitMin: 12, hasLimit: true, p99: 0.4, p99Served: p99Served, goodput: 40}
	}
	// buckets: a token bucket's 429s with the adaptive limiter on (lab 7).
	buckets := func(s int) overloadPoint {
		return overloadPoint{at: at(s), rate: 19, rejected: 7, limitMax: 20, limitMin: 20, hasLimit: true, p99: 0.7, p99Served: 0.7}
	}
	tests := []struct {
		name        string
		points      []overloadPoint
		wantPassed  bool
		wantMissing string // a phrase of the first thing missing
	}{
		{"fresh stack", nil, false, "no overload with the limiter off"},
		{"idle stack", []overloadPoint{idle(0), idle(5)}, false, "no overload with the limiter off"},
		{"the default limiter only", []overloadPoint{on(0, 0.5), on(5, 0.5)}, false, "no overload with the limiter off"},
		{"busy without a limiter, not overloaded",
			[]overloadPoint{{at: at(0), rate: 300, hasLimit: true, p99: 0.2, p99Served: 0.2}}, false, "busy but not overloaded"},
		{"only the gateway's limiter off: others refused",
			[]overloadPoint{{at: at(0), rate: 300, rejected: 50, hasLimit: true, p99: 3, p99Served: 3}}, false, "turn it off in every service"},
		{"off, not yet on", []overloadPoint{off(0, 6), off(5, 7)}, false, "no overload with the limiter on after"},
		{"off, then only a token bucket's 429s", []overloadPoint{off(0, 6), buckets(5)}, false, "no overload with the limiter on after"},
		{"on before off only", []overloadPoint{on(0, 0.5), off(5, 6)}, false, "no overload with the limiter on after"},
		{"off then on, faster", []overloadPoint{idle(0), off(5, 6), off(10, 8), idle(15), on(20, 0.9), on(25, 1.1)}, true, ""},
		{"off with no 2xx at all, then on", []overloadPoint{off(0, math.Inf(1)), on(5, 2)}, true, ""},
		{"off then on, no faster", []overloadPoint{off(0, 1.2), on(5, 1.5)}, false, "were not faster"},
		{"without a limit metric", []overloadPoint{{at: at(0), rate: 300, p99: 5, p99Served: 5}}, false, "no overload with the limiter off"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judgeOverload(tt.points)
			if got := len(v.Missing) == 0; got != tt.wantPassed {
				t.Fatalf("passed = %v, want %v; missing %q, seen %q", got, tt.wantPassed, v.Missing, v.Seen)
			}
			if !tt.wantPassed && !strings.Contains(v.Missing[0], tt.wantMissing) {
				t.Errorf("missing %q, want it to say %q", v.Missing, tt.wantMissing)
			}
			if tt.wantPassed && len(v.Seen) != 3 {
				t.Errorf("seen %q, want the period without a limiter, the one with it and the comparison", v.Seen)
			}
		})
	}
}
