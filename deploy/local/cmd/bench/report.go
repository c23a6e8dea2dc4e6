package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// result is what one benchmark run measured.
type result struct {
	opts     options
	products int

	submitted, errors, skipped int            // POSTs of the window (see counts)
	byError                    map[string]int // errors by kind
	confirmed, cancelled       int            // orders of the window with a final event
	unfinished                 int            // orders of the window without one after -drain
	completions                int            // final events that arrived in the window

	toArrival  []time.Duration // per finished order of the window: event arrival − POST sent
	toOccurred []time.Duration // per finished order of the window: occurred_at − POST sent

	cpu  []cpuShare // CPU use of the stack's processes over the window
	cost *cost      // -cost
	// profiles are the CPU profiles written (-profile).
	profiles []string
}

func (r *result) print(w io.Writer) {
	o := r.opts
	secs := o.duration.Seconds()
	if o.rate > 0 {
		fmt.Fprintf(w, "load: open loop at %g orders/s, %s warm-up, %s window, %d products\n", o.rate, o.warmup, o.duration, r.products)
	} else {
		fmt.Fprintf(w, "load: saturation, %d closed-loop workers, %s warm-up, %s window, %d products\n", o.concurrency, o.warmup, o.duration, r.products)
	}
	fmt.Fprintf(w, "offered: %.2f orders/s (POSTs sent in the window / window)\n", float64(r.submitted)/secs)
	fmt.Fprintf(w, "orders sent in the window: %d submitted, %d errors, %d skipped (max in flight), %d confirmed, %d cancelled, %d without a final event after %s\n",
		r.submitted, r.errors, r.skipped, r.confirmed, r.cancelled, r.unfinished, o.drain)
	for _, k := range slices.Sorted(maps.Keys(r.byError)) {
		fmt.Fprintf(w, "  error %q: %d\n", k, r.byError[k])
	}
	fmt.Fprintf(w, "completed sagas/s: %.2f (%d final events arrived in the %s window)\n", float64(r.completions)/secs, r.completions, o.duration)
	fmt.Fprintf(w, "time to final status, POST sent -> event read from order.events: %s\n", summary(r.toArrival))
	fmt.Fprintf(w, "time to final status, POST sent -> event occurred_at:            %s\n", summary(r.toOccurred))
	if len(r.cpu) > 0 {
		var parts []string
		total := 0.0
		for _, c := range r.cpu {
			pct := c.seconds / secs * 100
			total += pct
			parts = append(parts, fmt.Sprintf("%s %.1f%%", c.name, pct))
		}
		fmt.Fprintf(w, "CPU over the window (%% of one core; 2 cores = 200%%): %s; total %.1f%%\n", strings.Join(parts, ", "), total)
	}
	if r.cost != nil {
		r.cost.print(w)
	}
	if len(r.profiles) > 0 {
		slices.Sort(r.profiles)
		fmt.Fprintf(w, "CPU profiles of the window (go tool pprof -top FILE): %s\n", strings.Join(r.profiles, " "))
	}
}

// summary formats the percentiles of ds.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no orders finished"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) string {
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + " ms"
	}
	return fmt.Sprintf("p50 %s, p90 %s, p99 %s, max %s (n=%d)",
		ms(percentile(s, 50)), ms(percentile(s, 90)), ms(percentile(s, 99)), ms(s[len(s)-1]), len(s))
}

// percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p % of the values at
// or below it. It never interpolates, so it is always a measured value. It
// returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

// cpuSnapshot is the CPU time used so far by each process of the stack and
// by bench itself, keyed by pid.
type cpuSnapshot map[int]procCPU

type procCPU struct {
	name    string // the program, or "postgres" for every PostgreSQL process
	seconds float64
}

// cpuShare is the CPU time a program used over the window.
type cpuShare struct {
	name    string
	seconds float64
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on Linux
// for every architecture Go supports.
const clockTicks = 100

// sampleCPU reads, from /proc, the user+system CPU time of this process, of
// root and of every process whose command line mentions dir (PostgreSQL's
// server, which pg_ctl detaches from the launcher), and of all their
// descendants. It returns what it could read: processes come and go.
func sampleCPU(root int, dir string) cpuSnapshot {
	roots := map[int]bool{root: true}
	type stat struct {
		name    string
		ppid    int
		seconds float64
	}
	stats := map[int]stat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closing < open {
			continue
		}
		// After "pid (comm) ": state ppid ... utime (14th field) stime (15th).
		f := strings.Fields(s[closing+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		utime, _ := strconv.ParseFloat(f[11], 64)
		stime, _ := strconv.ParseFloat(f[12], 64)
		if cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && strings.Contains(string(cmdline), dir) {
			roots[pid] = true
		}
		stats[pid] = stat{name: s[open+1 : closing], ppid: ppid, seconds: (utime + stime) / clockTicks}
	}
	snap := cpuSnapshot{}
	self := os.Getpid()
	for pid, st := range stats {
		in := pid == self
		for p, hops := pid, 0; !in && p > 1 && hops < 64; p, hops = stats[p].ppid, hops+1 {
			in = roots[p]
		}
		if !in {
			continue
		}
		name := st.name
		switch {
		case pid == self:
			name = "bench"
		case strings.HasPrefix(name, "postgres") || strings.HasPrefix(name, "pg_"):
			name = "postgres"
		}
		snap[pid] = procCPU{name: name, seconds: st.seconds}
	}
	return snap
}

// since returns the CPU time each program used between before and s,
// largest first; a process not in before started in between.
func (s cpuSnapshot) since(before cpuSnapshot) []cpuShare {
	byName := map[string]float64{}
	for pid, p := range s {
		byName[p.name] += p.seconds - before[pid].seconds
	}
	var shares []cpuShare
	for name, sec := range byName {
		shares = append(shares, cpuShare{name: name, seconds: sec})
	}
	slices.SortFunc(shares, func(a, b cpuShare) int {
		if a.seconds != b.seconds {
			if a.seconds > b.seconds {
				return -1
			}
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	return shares
}
