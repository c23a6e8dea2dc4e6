package probe

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the probe's Prometheus metrics; it is a prometheus.Collector.
type metrics struct {
	routes *routes
	probe  *Probe

	// observers are the request histograms of the events seen lately, by
	// what labels them, so that a repeated request costs one map lookup,
	// not the label strings, the route match and the vector's own lookup
	// (BenchmarkHTTPEvent). Only the HTTP reader uses it; it is emptied
	// when it holds maxObservers (paths of one route are distinct keys).
	observers map[observerKey]prometheus.Observer

	requests    *prometheus.HistogramVec
	opened      *prometheus.CounterVec
	durations   *prometheus.HistogramVec
	failed      *prometheus.CounterVec
	retransmits *prometheus.CounterVec

	lost, targets, programRuns, programSeconds *prometheus.Desc
}

func newMetrics(patterns []string, p *Probe) (*metrics, error) {
	r, err := newRoutes(patterns)
	if err != nil {
		return nil, err
	}
	peerLabels := []string{"process", "direction", "peer"}
	return &metrics{
		routes:    r,
		probe:     p,
		observers: make(map[observerKey]prometheus.Observer),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ebpf_http_server_request_duration_seconds",
			Help: "Duration of HTTP requests served by Go programs, seen by the eBPF probe (net/http.serverHandler.ServeHTTP).",
			// OpenTelemetry's advice for http.server.request.duration.
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10},
		}, []string{"process", "http_request_method", "http_route", "http_response_status_code"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_tcp_connections_opened_total",
			Help: "TCP connections established by (outbound) or accepted by (inbound) a watched process.",
		}, peerLabels),
		durations: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "ebpf_tcp_connection_duration_seconds",
			Help:    "Time from established to closed of the TCP connections of a watched process.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, peerLabels),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_tcp_connection_failures_total",
			Help: "Connection attempts of a watched process that ended before established (refused, reset or timed out: SYN_SENT to CLOSE).",
		}, []string{"process", "peer"}),
		retransmits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ebpf_tcp_retransmits_total",
			Help: "TCP segments retransmitted on the connections of a watched process.",
		}, peerLabels),
		lost: prometheus.NewDesc("ebpf_probe_events_lost_total",
			"Events the kernel dropped because the probe's ring buffer was full.", []string{"source"}, nil),
		targets: prometheus.NewDesc("ebpf_probe_targets",
			"Processes watched; http: whether their Go HTTP server is traced.", []string{"http"}, nil),
		programRuns: prometheus.NewDesc("ebpf_probe_program_runs_total",
			"Runs of each BPF program of the probe (with -program-stats).", []string{"program"}, nil),
		programSeconds: prometheus.NewDesc("ebpf_probe_program_run_seconds_total",
			"Time spent in each BPF program of the probe (with -program-stats).", []string{"program"}, nil),
	}, nil
}

// observerKey is what labels an HTTP event: the process and the event's
// method, path and status as the kernel wrote them.
type observerKey struct {
	process string
	method  [8]int8
	path    [128]int8
	status  uint16
	lens    [4]uint8 // method and path lengths, truncated, response known
}

const maxObservers = 4096

// http counts one request; it is called by one goroutine at a time.
func (m *metrics) http(process string, e *httpHttpEvent) {
	key := observerKey{process: process, status: e.Status, lens: [4]uint8{e.MethodLen, e.PathLen, e.PathTruncated, e.ResponseKnown}}
	copy(key.method[:e.MethodLen], e.Method[:])
	copy(key.path[:e.PathLen], e.Path[:])
	o, ok := m.observers[key]
	if !ok {
		if len(m.observers) >= maxObservers {
			clear(m.observers)
		}
		method, path, status := httpLabels(e)
		o = m.requests.WithLabelValues(process, method, m.routes.route(method, path), status)
		m.observers[key] = o
	}
	o.Observe(seconds(e.DurationNs))
}

func (m *metrics) tcp(process string, e *tcpTcpEvent) {
	switch e.Kind {
	case tcpOpen:
		m.opened.WithLabelValues(process, direction(e), peer(e)).Inc()
	case tcpClose:
		m.durations.WithLabelValues(process, direction(e), peer(e)).Observe(seconds(e.DurationNs))
	case tcpFailed:
		m.failed.WithLabelValues(process, peer(e)).Inc()
	case tcpRetransmit:
		m.retransmits.WithLabelValues(process, direction(e), peer(e)).Inc()
	}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.opened.Describe(ch)
	m.durations.Describe(ch)
	m.failed.Describe(ch)
	m.retransmits.Describe(ch)
	ch <- m.lost
	ch <- m.targets
	ch <- m.programRuns
	ch <- m.programSeconds
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.opened.Collect(ch)
	m.durations.Collect(ch)
	m.failed.Collect(ch)
	m.retransmits.Collect(ch)
	p := m.probe
	ch <- prometheus.MustNewConstMetric(m.lost, prometheus.CounterValue, sumPerCPU(p.http.HttpLost, p.log), "http")
	ch <- prometheus.MustNewConstMetric(m.lost, prometheus.CounterValue, sumPerCPU(p.tcp.TcpLost, p.log), "tcp")
	all, traced := p.counts()
	ch <- prometheus.MustNewConstMetric(m.targets, prometheus.GaugeValue, float64(traced), "true")
	ch <- prometheus.MustNewConstMetric(m.targets, prometheus.GaugeValue, float64(all-traced), "false")
	if p.stats == nil {
		return
	}
	for name, prog := range map[string]*ebpf.Program{
		"serve_http":          p.http.ServeHttp,
		"serve_http_return":   p.http.ServeHttpReturn,
		"inet_sock_set_state": p.tcp.InetSockSetState,
		"tcp_retransmit_skb":  p.tcp.TcpRetransmitSkb,
	} {
		st, err := prog.Stats()
		if err != nil {
			p.log.Warn("read BPF program statistics", "program", name, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.programRuns, prometheus.CounterValue, float64(st.RunCount), name)
		ch <- prometheus.MustNewConstMetric(m.programSeconds, prometheus.CounterValue, st.Runtime.Seconds(), name)
	}
}

// routes map request paths to the route patterns that match them, with
// net/http.ServeMux's own matching; nil maps a path to itself.
type routes struct{ mux *http.ServeMux }

func newRoutes(patterns []string) (r *routes, err error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	r = &routes{mux: http.NewServeMux()}
	for _, pattern := range patterns {
		if err := r.handle(pattern); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// handle adds pattern; ServeMux panics on an invalid or conflicting one.
func (r *routes) handle(pattern string) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("route pattern %q: %v", pattern, v)
		}
	}()
	r.mux.Handle(pattern, http.NotFoundHandler())
	return nil
}

// route is the path part of the pattern matching method and path
// ("/orders/{id}"), "unmatched" if none does, or path when r is nil.
func (r *routes) route(method, path string) string {
	if r == nil {
		return path
	}
	_, pattern := r.mux.Handler(&http.Request{Method: method, URL: &url.URL{Path: path}})
	if pattern == "" {
		return "unmatched"
	}
	if i := strings.IndexByte(pattern, '/'); i >= 0 { // drop "GET " and a host
		return pattern[i:]
	}
	return pattern
}
