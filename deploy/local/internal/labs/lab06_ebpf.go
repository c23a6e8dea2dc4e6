package labs

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ebpfMinRequests is how many requests of the gateway's API lab 6 wants
// both views to have counted: enough to be the learner's, not a stray
// one.
const ebpfMinRequests = 20

// ebpfMinHealthChecks is how many GET /healthz of the gateway lab 6 wants
// the probe to have counted: the learner's own (nothing else calls the
// gateway's /healthz natively), which the SDK leaves out.
const ebpfMinHealthChecks = 10

// ebpfSettle is how long lab 6 waits for the two views to agree: a
// request in flight is counted by one before the other.
const ebpfSettle = 10 * time.Second

// unobserved are the paths the services' SDK leaves out of its metrics
// (probes and scrapes would drown the dashboards) and the probe counts.
var unobserved = []string{"/healthz", "/readyz", "/metrics"}

// requestKey is a count's key: method, route template and status class
// (2 for 2xx), the SDK's resolution.
type requestKey struct {
	method, route string
	class         int
}

func (k requestKey) String() string { return fmt.Sprintf("%s %s %dxx", k.method, k.route, k.class) }

// checkEBPF is lab 6's check: the eBPF probe's count of the HTTP requests
// each service served equals the service's own SDK count
// (http_server_request_duration_seconds), per method, route and status
// class — exactly, the tolerance of the probe's TestAgreementServices —
// the gateway served at least ebpfMinRequests API requests, and the probe
// counted the learner's health checks of the gateway, which only it sees.
func checkEBPF(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	if s.Probe == "" {
		v.Missing = append(v.Missing, "the eBPF probe is not running: start make run-full as root (the launcher says why it did not start the probe)")
		return v, nil
	}
	if s.Gateway == "" {
		v.Missing = append(v.Missing, "the gateway is not running: start make run-full as root")
		return v, nil
	}
	if _, err := scrape(ctx, s.Probe); err != nil {
		v.Missing = append(v.Missing, fmt.Sprintf("the eBPF probe does not answer at %s (%v): start make run-full as root (the launcher says why it did not start the probe)", s.Probe, err))
		return v, nil
	}
	services, err := watchedServices(ctx, s)
	if err != nil {
		return v, err
	}
	// Compare until both views agree: the requests of the moment before
	// are counted by one and then the other.
	var diffs map[string][]string
	var counted map[string]map[requestKey]int // requests both views counted
	deadline := time.Now().Add(ebpfSettle)
	var health, traced int
	for {
		diffs, counted, health, traced, err = compareViews(ctx, s.Probe, services)
		if err != nil || len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	if err != nil {
		return v, err
	}

	gateway := 0
	for _, n := range counted["gateway"] {
		gateway += n
	}
	if gateway < ebpfMinRequests {
		v.Missing = append(v.Missing, fmt.Sprintf("the gateway has served %d API requests that both views counted, fewer than %d: send the requests of the lab with curl (health, readiness and metrics do not count: the SDK leaves them out)",
			gateway, ebpfMinRequests))
	}
	if traced < len(services) {
		v.Missing = append(v.Missing, fmt.Sprintf("the probe traces the HTTP servers of %d of the %d services yet (ebpf_probe_targets{http=\"true\"}): it reads each program's DWARF when it starts; wait until it traces them all, send the lab's requests again and check again",
			traced, len(services)))
	}
	if health < ebpfMinHealthChecks {
		v.Missing = append(v.Missing, fmt.Sprintf("the probe has counted %d GET /healthz of the gateway, fewer than %d: send the lab's health checks with curl and compare what each view counts of them",
			health, ebpfMinHealthChecks))
	} else {
		v.Seen = append(v.Seen, fmt.Sprintf("the probe counted %d GET /healthz of the gateway, which the SDK leaves out of its metrics", health))
	}
	for _, name := range slices.Sorted(maps.Keys(services)) {
		if d := diffs[name]; len(d) > 0 {
			v.Missing = append(v.Missing, fmt.Sprintf("%s: the probe and the SDK disagree: %s. Stop sending requests and check again; if it stays, see the lab's questions (the storefront's pages call the API inside the gateway, which the SDK counts and the probe cannot see; a restarted service starts its SDK counters from zero, the probe does not)",
				name, strings.Join(d, "; ")))
			continue
		}
		if len(counted[name]) > 0 {
			v.Seen = append(v.Seen, fmt.Sprintf("%s: the probe and the SDK agree on %s", name, describeCounts(counted[name])))
		}
	}
	return v, nil
}

// watchedServices returns the base URLs of the services to compare, by
// name: every job Prometheus scrapes that the probe watches, or without
// Prometheus the gateway and the payment provider of s.
func watchedServices(ctx context.Context, s Stack) (map[string]string, error) {
	services := map[string]string{"gateway": s.Gateway}
	if s.PSP != "" {
		services["psp"] = s.PSP
	}
	if s.Prometheus == "" {
		return services, nil
	}
	targets, err := newPrometheus(s.Prometheus).targets(ctx)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		switch t.job {
		case "gateway", "order", "inventory", "payment", "psp":
			if base, ok := strings.CutSuffix(t.url, "/metrics"); ok {
				services[t.job] = base
			}
		}
	}
	return services, nil
}

// compareViews reads the probe's counts and each service's SDK counts and
// returns, per service, the keys where they differ, in words, and the
// requests both counted; the probe's count of the gateway's health
// checks; and how many HTTP servers the probe traces.
func compareViews(ctx context.Context, probeURL string, services map[string]string) (diffs map[string][]string, agreed map[string]map[requestKey]int, health, traced int, err error) {
	probeMetrics, err := scrape(ctx, probeURL)
	if err != nil {
		return nil, nil, 0, 0, fmt.Errorf("the eBPF probe: %w", err)
	}
	probe := probeCounts(probeMetrics)
	health = gatewayHealthChecks(probeMetrics)
	for _, metric := range probeMetrics["ebpf_probe_targets"].GetMetric() {
		if labelMap(metric)["http"] == "true" {
			traced = int(metric.GetGauge().GetValue())
		}
	}
	diffs = map[string][]string{}
	agreed = map[string]map[requestKey]int{}
	for name, base := range services {
		m, err := scrape(ctx, base)
		if err != nil {
			return nil, nil, 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		sdk := foldUnknownRoutes(sdkCounts(m), probe[name])
		seen := probe[name]
		agreed[name] = map[requestKey]int{}
		for _, k := range slices.SortedFunc(maps.Keys(union(sdk, seen)), compareKeys) {
			if sdk[k] != seen[k] {
				diffs[name] = append(diffs[name], fmt.Sprintf("%v: the probe counted %d, the SDK %d", k, seen[k], sdk[k]))
			}
			if n := min(sdk[k], seen[k]); n > 0 {
				agreed[name][k] = n
			}
		}
	}
	return diffs, agreed, health, traced, nil
}

// gatewayHealthChecks is the probe's count of GET /healthz answered by
// the gateway.
func gatewayHealthChecks(m metrics) int {
	n := 0
	for _, metric := range m["ebpf_http_server_request_duration_seconds"].GetMetric() {
		l := labelMap(metric)
		if l["process"] == "gateway" && l["http_request_method"] == "GET" && l["http_route"] == "/healthz" {
			n += int(metric.GetHistogram().GetSampleCount())
		}
	}
	return n
}

// probeCounts returns the probe's request counts by process and key,
// health, readiness and metrics left out as the SDK leaves them.
func probeCounts(m metrics) map[string]map[requestKey]int {
	out := map[string]map[requestKey]int{}
	for _, metric := range m["ebpf_http_server_request_duration_seconds"].GetMetric() {
		l := labelMap(metric)
		route := l["http_route"]
		if route == "/{$}" { // the launcher's pattern of "/" alone
			route = "/"
		}
		if slices.Contains(unobserved, route) {
			continue
		}
		status, err := strconv.Atoi(l["http_response_status_code"])
		if err != nil {
			continue
		}
		if out[l["process"]] == nil {
			out[l["process"]] = map[requestKey]int{}
		}
		out[l["process"]][requestKey{l["http_request_method"], route, status / 100}] += int(metric.GetHistogram().GetSampleCount())
	}
	return out
}

// ginParam is a Gin route parameter, written {name} as ServeMux patterns
// (and the probe's routes) write it.
var ginParam = regexp.MustCompile(`:([A-Za-z_]+)`)

// sdkCounts returns a service's own request counts by key.
func sdkCounts(m metrics) map[requestKey]int {
	out := map[requestKey]int{}
	for _, metric := range m["http_server_request_duration_seconds"].GetMetric() {
		l := labelMap(metric)
		class, err := strconv.Atoi(strings.TrimSuffix(l["http_response_status_class"], "xx"))
		if err != nil {
			continue
		}
		route := ginParam.ReplaceAllString(l["http_route"], "{$1}")
		out[requestKey{l["http_request_method"], route, class}] += int(metric.GetHistogram().GetSampleCount())
	}
	return out
}

// foldUnknownRoutes counts the SDK's routes that the probe has no series
// of as "unmatched", as the probe labels a path none of its patterns
// (the launcher's PROBE_ROUTES) matches.
func foldUnknownRoutes(sdk, probe map[requestKey]int) map[requestKey]int {
	known := map[string]bool{"unmatched": true}
	for k := range probe {
		known[k.route] = true
	}
	out := map[requestKey]int{}
	for k, n := range sdk {
		if !known[k.route] {
			k.route = "unmatched"
		}
		out[k] += n
	}
	return out
}

func union(a, b map[requestKey]int) map[requestKey]int {
	out := maps.Clone(a)
	for k, n := range b {
		out[k] += n
	}
	return out
}

func compareKeys(a, b requestKey) int {
	return strings.Compare(a.String(), b.String())
}

// describeCounts says the counts in words, the largest first.
func describeCounts(counts map[requestKey]int) string {
	keys := slices.SortedFunc(maps.Keys(counts), func(a, b requestKey) int {
		if counts[a] != counts[b] {
			return counts[b] - counts[a]
		}
		return compareKeys(a, b)
	})
	var parts []string
	total := 0
	for _, k := range keys {
		total += counts[k]
		parts = append(parts, fmt.Sprintf("%v %d", k, counts[k]))
	}
	return fmt.Sprintf("%d requests (%s)", total, strings.Join(parts, ", "))
}
