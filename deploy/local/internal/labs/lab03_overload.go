package labs

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"
)

// What lab 3 takes for an overloaded gateway, read over windows of
// overloadWindow: at least overloadMinRate answers a second, and with the
// limiter off a p99 of its answers of at least overloadSlowP99 — twice the
// checkout SLO's 500 ms, which an unloaded shop meets by far. The rate is
// of answers, not of arrivals (the histogram counts a request when it is
// answered): deep in an overload without a limiter the gateway answers
// only a few a second, each after seconds, while the clients' requests
// time out unanswered (seen at 600/s on a crowded 2-core machine: about 8
// answers a second).
const (
	overloadWindow  = 20 * time.Second
	overloadMinRate = 5.0
	overloadSlowP99 = 1.0 // seconds
	// goodputWithin is the latency of the goodput: 2xx answers within
	// 250 ms (a bucket boundary of the HTTP histogram).
	goodputWithin = "0.25"
)

// overloadPoint is what Prometheus says of the gateway over the window
// ending at one time.
type overloadPoint struct {
	at       time.Time
	rate     float64 // requests per second, every answer
	rejected float64 // requests every limiter refused, all services
	shed     float64 // of them, those the adaptive limiters refused (503)
	limitMax float64 // the gateway's adaptive limit, highest and lowest
	limitMin float64 // over the window (0: adaptive limiting off)
	hasLimit bool    // limiter_limit had samples
	// p99 is of every answer; p99Served of the 2xx answers, +Inf when
	// there was none. Seconds.
	p99, p99Served float64
	goodput        float64 // 2xx answers within goodputWithin per second
}

// checkOverload is lab 3's check: within the lookback, Prometheus shows a
// period when the gateway was overloaded with adaptive limiting off (no
// limiter of any service refused anything, the gateway's limiter_limit
// 0, and the p99 of its answers at least overloadSlowP99), and a later
// one as busy with it on (limiter_limit above 0 and requests shed by the
// adaptive limiters — not a token bucket's 429s, which lab 7 teaches)
// whose 2xx answers had a lower p99 — like compared with like: the
// limiter's rejections are fast, and counting them would flatter it.
func checkOverload(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	if s.Prometheus == "" {
		v.Missing = append(v.Missing, "Prometheus is not running: start the stack with make run-full")
		return v, nil
	}
	points, err := overloadHistory(ctx, newPrometheus(s.Prometheus))
	if err != nil {
		return v, err
	}
	return judgeOverload(points), nil
}

// judgeOverload is lab 3's verdict on the gateway's history, its points
// in time order.
func judgeOverload(points []overloadPoint) Verdict {
	var v Verdict
	var busy, off, on []overloadPoint
	for _, pt := range points {
		if pt.rate < overloadMinRate || !pt.hasLimit {
			continue
		}
		busy = append(busy, pt)
		switch {
		case pt.limitMax == 0 && pt.rejected == 0 && pt.p99 >= overloadSlowP99:
			off = append(off, pt)
		case pt.limitMin > 0 && pt.shed > 0:
			on = append(on, pt)
		}
	}
	if len(off) == 0 {
		v.Missing = append(v.Missing, missingOff(busy))
	} else {
		v.Seen = append(v.Seen, "without a limiter: "+describePeriod(off))
	}
	if len(off) > 0 {
		on = slices.DeleteFunc(on, func(pt overloadPoint) bool { return pt.at.Before(off[0].at) })
	}
	switch {
	case len(on) == 0 && len(off) > 0:
		v.Missing = append(v.Missing, fmt.Sprintf("no overload with the limiter on after %s: put the adaptive limiter back (delete the microshop/<service>/limit keys, or set {\"adaptive\": \"gradient2\"}) and run the overload again", clock(off[0].at)))
	case len(on) == 0:
		v.Missing = append(v.Missing, "no overload with the limiter on and refusing requests yet: after the run without a limiter, put it back and run the overload again")
	default:
		v.Seen = append(v.Seen, "with the limiter on: "+describePeriod(on))
	}
	if len(off) > 0 && len(on) > 0 {
		served := func(pt overloadPoint) float64 { return pt.p99Served }
		offP99, onP99 := median(off, served), median(on, served)
		if onP99 < offP99 {
			v.Seen = append(v.Seen, fmt.Sprintf("the answers the gateway served were faster with the limiter: p99 %s against %s without", seconds(onP99), seconds(offP99)))
		} else {
			v.Missing = append(v.Missing, fmt.Sprintf("with the limiter on, the answers the gateway served were not faster: p99 %s against %s without. Was the machine busier the second time? Run both again, one after the other", seconds(onP99), seconds(offP99)))
		}
	}
	return v
}

// overloadHistory reads the gateway's load, latency and limiter over the
// lookback, one point per step.
func overloadHistory(ctx context.Context, p *prometheus) ([]overloadPoint, error) {
	w := fmt.Sprintf("[%ds]", int(overloadWindow.Seconds()))
	served := `http_server_request_duration_seconds_bucket{job="gateway",http_response_status_class="2xx"`
	queries := map[string]string{
		"rate":      `sum(rate(http_server_request_duration_seconds_count{job="gateway"}` + w + `))`,
		"rejected":  `sum(increase(limiter_rejected_total` + w + `))`,
		"shed":      `sum(increase(limiter_rejected_total{reason="adaptive"}` + w + `))`,
		"limitMax":  `max(max_over_time(limiter_limit{job="gateway"}` + w + `))`,
		"limitMin":  `min(min_over_time(limiter_limit{job="gateway"}` + w + `))`,
		"p99":       `histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket{job="gateway"}` + w + `)))`,
		"p99Served": `histogram_quantile(0.99, sum by (le) (rate(` + served + `}` + w + `)))`,
		"goodput":   `sum(rate(` + served + `,le="` + goodputWithin + `"}` + w + `))`,
	}
	end := time.Now().Truncate(step)
	start := end.Add(-lookback)
	values := map[string]map[time.Time]float64{}
	for _, name := range slices.Sorted(maps.Keys(queries)) {
		byTime, err := p.rangeByTime(ctx, queries[name], start, end)
		if err != nil {
			return nil, err
		}
		values[name] = byTime
	}
	var points []overloadPoint
	for at, rate := range values["rate"] {
		pt := overloadPoint{at: at, rate: rate, rejected: values["rejected"][at], shed: values["shed"][at]}
		pt.limitMax, pt.hasLimit = values["limitMax"][at]
		pt.limitMin = values["limitMin"][at]
		pt.p99 = values["p99"][at]
		pt.p99Served = values["p99Served"][at]
		if pt.p99Served != pt.p99Served { // NaN: no 2xx answer in the window
			pt.p99Served = math.Inf(1)
		}
		pt.goodput = values["goodput"][at]
		points = append(points, pt)
	}
	sort.Slice(points, func(i, j int) bool { return points[i].at.Before(points[j].at) })
	return points, nil
}

// missingOff says why no overload without a limiter was found among the
// busy points.
func missingOff(busy []overloadPoint) string {
	var unlimited []overloadPoint
	for _, pt := range busy {
		if pt.limitMax == 0 && pt.rejected == 0 {
			unlimited = append(unlimited, pt)
		}
	}
	if len(unlimited) == 0 {
		var refused []overloadPoint
		for _, pt := range busy {
			if pt.limitMax == 0 && pt.rejected > 0 {
				refused = append(refused, pt)
			}
		}
		if len(refused) > 0 {
			return fmt.Sprintf("the gateway's adaptive limiter was off at %s, but limiters still refused requests: turn it off in every service (gateway, order, inventory, payment), not only the gateway", clock(refused[0].at))
		}
		return fmt.Sprintf("no overload with the limiter off in the last %s: put {\"adaptive\": \"none\"} at microshop/<service>/limit in Consul for gateway, order, inventory and payment, then run make load SCENARIO=overload", inWords(lookback))
	}
	worst := slices.MaxFunc(unlimited, func(a, b overloadPoint) int {
		switch {
		case a.p99 < b.p99:
			return -1
		case a.p99 > b.p99:
			return 1
		}
		return 0
	})
	return fmt.Sprintf("with the limiter off the gateway was busy but not overloaded: at worst (%s) %.0f requests/s and a p99 of %s, under the %s that shows an overload. Send more: make load SCENARIO=overload",
		clock(worst.at), worst.rate, seconds(worst.p99), seconds(overloadSlowP99))
}

// describePeriod says what a period's points show, in words.
func describePeriod(pts []overloadPoint) string {
	var refused []string
	total := 0.0
	for _, pt := range pts {
		total += pt.shed
	}
	if total > 0 {
		refused = append(refused, fmt.Sprintf(", the adaptive limiters shedding about %.1f requests/s", median(pts, func(pt overloadPoint) float64 { return pt.shed / overloadWindow.Seconds() })))
	}
	return fmt.Sprintf("from %s to %s, %.0f requests/s to the gateway%s; p99 of every answer %s, of its 2xx answers %s; goodput %.1f answers/s (2xx within %s s)",
		clock(pts[0].at), clock(pts[len(pts)-1].at),
		median(pts, func(pt overloadPoint) float64 { return pt.rate }), strings.Join(refused, ""),
		seconds(median(pts, func(pt overloadPoint) float64 { return pt.p99 })),
		seconds(median(pts, func(pt overloadPoint) float64 { return pt.p99Served })),
		median(pts, func(pt overloadPoint) float64 { return pt.goodput }), goodputWithin)
}

// median is the median of f over pts.
func median(pts []overloadPoint, f func(overloadPoint) float64) float64 {
	var xs []float64
	for _, pt := range pts {
		if x := f(pt); x == x { // not NaN
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func seconds(s float64) string {
	switch {
	case math.IsInf(s, 1):
		return "– (no 2xx answer)"
	case s < 1:
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.2f s", s)
}
