package telemetry

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// durationBuckets are the buckets the OpenTelemetry semantic conventions
// advise for http.server.request.duration and http.client.request.duration,
// in seconds.
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// Label names of the HTTP histograms: the OpenTelemetry attribute names as
// Prometheus spells them, and the status as its class (2xx, 4xx, 5xx), which
// is what RED alerts and dashboards group by.
const (
	labelRoute       = "http_route"
	labelMethod      = "http_request_method"
	labelStatusClass = "http_response_status_class"
	labelPeer        = "peer_service"
)

// Label values standing in for what must not become a label value.
const (
	routeUnmatched = "unmatched" // no route: the raw path is never a label
	methodOther    = "_OTHER"    // a method outside the known ones, as OTel names it
	statusError    = "error"     // a client request that got no response
)

// serverMetrics is the RED histogram of an HTTP server.
type serverMetrics struct {
	duration *prometheus.HistogramVec
}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests, by route template, method and status class. Its _count is the request rate, the 5xx class the errors.",
		Buckets: durationBuckets,
	}, []string{labelRoute, labelMethod, labelStatusClass})
	if err := reg.Register(duration); err != nil {
		return nil, fmt.Errorf("register http server metrics: %w", err)
	}
	return &serverMetrics{duration: duration}, nil
}

// middleware observes each request's duration once the handlers returned,
// labelled by the route template Gin matched (c.FullPath), never the raw path:
// /api/v1/orders/:id is one series whatever the ids.
func (m *serverMetrics) middleware() gin.HandlerFunc {
	return func(c *gin.Context) {
		route := c.FullPath()
		if unobserved(route) {
			c.Next()
			return
		}
		start := time.Now()
		c.Next()
		if route == "" {
			route = routeUnmatched
		}
		observe(m.duration.WithLabelValues(route, method(c.Request.Method), statusClass(c.Writer.Status())),
			time.Since(start), trace.SpanContextFromContext(c.Request.Context()))
	}
}

// clientMetrics is the RED histogram of HTTP clients.
type clientMetrics struct {
	duration *prometheus.HistogramVec
}

func newClientMetrics(reg prometheus.Registerer) (*clientMetrics, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_client_request_duration_seconds",
		Help:    "Duration of outbound HTTP requests until the response headers, by peer service, method and status class (error: no response).",
		Buckets: durationBuckets,
	}, []string{labelPeer, labelMethod, labelStatusClass})
	if err := reg.Register(duration); err != nil {
		return nil, fmt.Errorf("register http client metrics: %w", err)
	}
	return &clientMetrics{duration: duration}, nil
}

// transport returns next observed as calls to peer.
func (m *clientMetrics) transport(peer string, next http.RoundTripper) http.RoundTripper {
	return &observedTransport{duration: m.duration, peer: peer, next: next}
}

// observedTransport observes each round trip of next in duration.
type observedTransport struct {
	duration *prometheus.HistogramVec
	peer     string
	next     http.RoundTripper
}

func (t *observedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	class := statusError
	if err == nil {
		class = statusClass(resp.StatusCode)
	}
	observe(t.duration.WithLabelValues(t.peer, method(r.Method), class),
		time.Since(start), trace.SpanContextFromContext(r.Context()))
	return resp, err
}

// CloseIdleConnections passes http.Client.CloseIdleConnections on to the
// transport underneath, which the wrapping would otherwise hide.
func (t *observedTransport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// observe records d on o with the trace id of sc as exemplar when sc is
// sampled, so that a dashboard's slow bucket links to a trace Jaeger has.
func observe(o prometheus.Observer, d time.Duration, sc trace.SpanContext) {
	seconds := d.Seconds()
	if eo, ok := o.(prometheus.ExemplarObserver); ok && sc.IsSampled() {
		eo.ObserveWithExemplar(seconds, prometheus.Labels{"trace_id": sc.TraceID().String()})
		return
	}
	o.Observe(seconds)
}

// Observe records d on the histogram o, with the trace id of the sampled
// span in ctx, if any, as its exemplar: for the histograms of other
// packages (saga, messaging) what the HTTP histograms do.
func Observe(ctx context.Context, o prometheus.Observer, d time.Duration) {
	observe(o, d, trace.SpanContextFromContext(ctx))
}

// statusClass returns "2xx" for 200 to 299, and so on.
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "unknown"
	}
	return strconv.Itoa(code/100) + "xx"
}

// method returns m if it is a standard method, methodOther if not: a client
// can send any token as method, and each would become a series.
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return methodOther
}
