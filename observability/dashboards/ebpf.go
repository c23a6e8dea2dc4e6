package dashboards

// unobserved are the routes pkg/telemetry leaves out of the services' own
// HTTP metrics (health checks and scrapes would drown them), a regular
// expression; the eBPF probe sees them like any other.
const unobserved = "/healthz|/readyz|/metrics"

// ebpf sets the eBPF probe (observability/ebpf), which watches the services
// from the kernel, beside the services' own metrics (the SDK) on the same
// requests: request rate and latency per service from both, what only the
// probe sees, and TCP per peer, which the SDK does not measure at all.
//
// The probe labels by process (the executable's name), the SDK's series by
// Prometheus job; in the native and compose stacks both are the service's
// name. The probe's latency runs from net/http's dispatch to the handler's
// return, the SDK's inside Gin's middleware: the probe's is a little longer.
func ebpf() Dashboard {
	const sdk = "http_server_request_duration_seconds"
	const probe = "ebpf_http_server_request_duration_seconds"
	observed := `{http_route!~"` + unobserved + `"}` // what the SDK sees too
	// "or ... * 0": a peer without a retransmission or a failed connection
	// has no such series yet; it shows 0, not "no data".
	outbound := "sum by (process, peer) (" + rate(`ebpf_tcp_connections_opened_total{direction="outbound"}`) + ") * 0"
	return Dashboard{File: "ebpf.json", UID: "microshop-ebpf", Title: "microshop / eBPF probe beside the SDK", Panels: []Panel{
		{Title: "Requests served per second, by service: SDK and eBPF", Unit: "reqps", Queries: []Query{
			{Expr: "sum by (job) (" + rate(sdk+"_count") + ")", Legend: "{{job}} SDK"},
			{Expr: "sum by (process) (" + rate(probe+"_count"+observed) + ")", Legend: "{{process}} eBPF"},
		}},
		{Title: "p50 request duration, by service: SDK and eBPF", Unit: "s", Queries: []Query{
			{Expr: quantile("0.5", sdk, "", "job"), Legend: "{{job}} SDK"},
			{Expr: quantile("0.5", probe, observed, "process"), Legend: "{{process}} eBPF"},
		}},
		{Title: "p99 request duration, by service: SDK and eBPF", Unit: "s", Queries: []Query{
			{Expr: quantile("0.99", sdk, "", "job"), Legend: "{{job}} SDK"},
			{Expr: quantile("0.99", probe, observed, "process"), Legend: "{{process}} eBPF"},
		}},
		{Title: "Requests only the probe sees: health checks and scrapes, per second", Unit: "reqps", Queries: []Query{
			{Expr: "sum by (process, http_route) (" + rate(probe+`_count{http_route=~"`+unobserved+`"}`) + ")", Legend: "{{process}} {{http_route}}"},
		}},
		{Title: "TCP connections opened per second, by process, direction and peer", Unit: "ops", Queries: []Query{
			{Expr: "sum by (process, direction, peer) (" + rate("ebpf_tcp_connections_opened_total") + ")", Legend: "{{process}} {{direction}} {{peer}}"},
		}},
		{Title: "TCP retransmissions per second, by process and peer", Unit: "ops", Queries: []Query{
			{Expr: "sum by (process, peer) (" + rate("ebpf_tcp_retransmits_total") + ") or " + outbound, Legend: "{{process}} → {{peer}}"},
		}},
		{Title: "Failed TCP connections per second (refused, reset, timed out), by process and peer", Unit: "ops", Queries: []Query{
			{Expr: "sum by (process, peer) (" + rate("ebpf_tcp_connection_failures_total") + ") or " + outbound, Legend: "{{process}} → {{peer}}"},
		}},
		{Title: "Events the probe lost (ring buffer full), per second", Unit: "ops", Queries: []Query{
			{Expr: "sum by (source) (" + rate("ebpf_probe_events_lost_total") + ")", Legend: "{{source}}"},
		}},
	}}
}
