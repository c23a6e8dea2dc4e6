package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range n {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"none", nil, 50, 0},
		{"one value is every percentile", ms(7), 99, 7 * time.Millisecond},
		{"p50 of two is the lower", ms(1, 2), 50, 1 * time.Millisecond},
		{"p50 of three is the middle", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 90, 90 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is the min", ms(1, 2, 3), 0.1, 1 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestParseFlagsDefaults(t *testing.T) {
	o, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode != "embedded" || o.rate != 0 || o.concurrency < 1 || o.duration <= 0 || o.portBase != 0 || o.dir != "" {
		t.Errorf("defaults = %+v, want embedded, saturation, free ports, a temporary directory", o)
	}
}

func TestParseFlagsRejects(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		errHas string
	}{
		{"unknown mode", []string{"-mode", "docker"}, "-mode"},
		{"negative rate", []string{"-rate", "-1"}, "-rate"},
		{"huge rate", []string{"-rate", "1e6"}, "-rate"},
		{"no workers", []string{"-concurrency", "0"}, "-concurrency"},
		{"zero duration", []string{"-duration", "0s"}, "-duration"},
		{"negative warm-up", []string{"-warmup", "-1s"}, "-warmup"},
		{"zero drain", []string{"-drain", "0s"}, "-drain"},
		{"port base leaves no room for the simulator", []string{"-port-base", "65530"}, "-port-base"},
		{"broker port out of range", []string{"-broker-port", "70000"}, "-broker-port"},
		{"no products", []string{"-products", "0"}, "-products"},
		{"no POSTs in flight", []string{"-max-in-flight", "0"}, "-max-in-flight"},
		{"unknown mix", []string{"-overload", "-mix", "checkout"}, "-mix"},
		{"negative capacity", []string{"-overload", "-capacity", "-5"}, "-capacity"},
		{"rules not JSON", []string{"-overload", "-rules", "routes"}, "-rules"},
		{"rules not an object", []string{"-overload", "-rules", "[1]"}, "-rules"},
		{"rules naming the algorithm", []string{"-overload", "-rules", `{"adaptive": "vegas"}`}, "-rules"},
		{"consul without PostgreSQL", []string{"-consul", "consul"}, "-consul"},
		{"no replicas", []string{"-replicas", "0"}, "-replicas"},
		{"too many replicas", []string{"-mode", "full", "-consul", "consul", "-replicas", "10"}, "-replicas"},
		{"replicas without consul", []string{"-mode", "full", "-replicas", "2"}, "-consul"},
		{"replicas with profiles", []string{"-mode", "full", "-consul", "consul", "-replicas", "2", "-profile", "p"}, "-profile"},
		{"stray argument", []string{"now"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("parseFlags(%q) = %v, want an error about %s", tt.args, err, tt.errHas)
			}
		})
	}
}

func TestTrackerMatchesEventsInEitherOrder(t *testing.T) {
	start := time.Now()
	tr := newTracker(start, start.Add(time.Minute))
	early := final{arrived: start.Add(time.Second), confirmed: true}
	tr.finished("o1", early) // the event before the POST's answer
	o1 := tr.placed("o1", start)
	o2 := tr.placed("o2", start.Add(-time.Second)) // sent in the warm-up
	tr.finished("o2", final{arrived: start.Add(2 * time.Second)})
	tr.finished("o2", final{arrived: start.Add(3 * time.Second), confirmed: true}) // redelivered

	for name, o := range map[string]*order{"o1": o1, "o2": o2} {
		select {
		case <-o.done:
		default:
			t.Errorf("%s not done after its final event", name)
		}
	}
	if o1.final != early || !o1.measured {
		t.Errorf("o1 = %+v, want measured with the early event %+v", o1, early)
	}
	if o2.final.confirmed || o2.measured {
		t.Errorf("o2 = %+v, want the first event (cancelled) and not measured", o2)
	}
	if got, want := tr.windowCompletions(), 2; got != want {
		t.Errorf("windowCompletions() = %d, want %d", got, want)
	}
	if got, want := len(tr.measuredOrders()), 1; got != want {
		t.Errorf("len(measuredOrders()) = %d, want %d", got, want)
	}
}
