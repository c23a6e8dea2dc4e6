// Package dashboards defines the shop's Grafana dashboards as Go code, built
// with the Grafana Foundation SDK. Their JSON is generated into
// observability/grafana/dashboards, where Grafana's provisioning picks it up;
// a test fails when the committed JSON is not what this code generates (run
// `make dashboards` after a change).
//
// Every panel is a list of PromQL queries over the metrics the processes
// export (see the metric names in pkg/telemetry, pkg/saga, pkg/outbox and
// pkg/messaging) and the recording rules of observability/prometheus/rules.
// [Queries] lists them, so that a test can run each against a Prometheus
// that scraped the running shop and prove that it returns data.
package dashboards

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// DatasourceUID is the uid of the Prometheus datasource the dashboards
// query; the provisioning file of observability/grafana names it so.
const DatasourceUID = "prometheus"

// RateInterval is what the panels use as the range of rate(): Grafana's
// $__rate_interval, at least four scrape intervals.
const RateInterval = "$__rate_interval"

// Dashboard is one dashboard: where its JSON goes and what it shows.
type Dashboard struct {
	// File is the name of its JSON file in observability/grafana/dashboards.
	File   string
	UID    string
	Title  string
	Panels []Panel
}

// Panel is a time series panel.
type Panel struct {
	Title   string
	Unit    string // a Grafana unit: reqps, s, percentunit, bytes, short
	Queries []Query
}

// Query is one PromQL query of a panel and the legend of its series.
type Query struct {
	Expr   string
	Legend string
}

// All returns the dashboards, in the order of their files.
func All() []Dashboard {
	return []Dashboard{overview(), checkout(), kafkaOutbox(), goRuntime(), ebpf()}
}

// Queries returns every PromQL expression of every dashboard.
func Queries() []string {
	var exprs []string
	for _, d := range All() {
		exprs = append(exprs, d.Queries()...)
	}
	return exprs
}

// Queries returns every PromQL expression of d's panels.
func (d Dashboard) Queries() []string {
	var exprs []string
	for _, p := range d.Panels {
		for _, q := range p.Queries {
			exprs = append(exprs, q.Expr)
		}
	}
	return exprs
}

// JSON returns the dashboard as Grafana's JSON model, indented.
func (d Dashboard) JSON() ([]byte, error) {
	ds := common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr(DatasourceUID)}
	// The v1 model, which Grafana's file provisioning loads in every
	// version; the SDK prefers dashboardv2, which needs Grafana 12's
	// experimental schema v2.
	//lint:ignore SA1019 the v2 schema is not loadable by released Grafana's file provisioning without a feature flag
	b := dashboard.NewDashboardBuilder(d.Title).
		Uid(d.UID).
		Tags([]string{"microshop", "generated"}).
		Refresh("10s").
		Time("now-30m", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
	for _, p := range d.Panels {
		panel := timeseries.NewPanelBuilder().
			Title(p.Title).
			Unit(p.Unit).
			Datasource(ds).
			Height(8).
			Span(12).
			Min(0).
			Legend(common.NewVizLegendOptionsBuilder().
				ShowLegend(true).
				DisplayMode(common.LegendDisplayModeList).
				Placement(common.LegendPlacementBottom)).
			Tooltip(common.NewVizTooltipOptionsBuilder().
				Mode(common.TooltipDisplayModeMulti).
				Sort(common.SortOrderDescending))
		for i, q := range p.Queries {
			panel.WithTarget(prometheus.NewDataqueryBuilder().
				RefId(string(rune('A' + i))).
				Expr(q.Expr).
				LegendFormat(q.Legend).
				Datasource(ds))
		}
		b.WithPanel(panel)
	}
	model, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("build dashboard %s: %w", d.UID, err)
	}
	out, err := json.MarshalIndent(model, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode dashboard %s: %w", d.UID, err)
	}
	return append(out, '\n'), nil
}

func ptr[T any](v T) *T { return &v }

// rate is rate(metric[$__rate_interval]).
func rate(metric string) string { return "rate(" + metric + "[" + RateInterval + "])" }

// quantile is the q quantile, by the labels of by, of the histogram
// metric (without _bucket).
func quantile(q, metric, selector, by string) string {
	return fmt.Sprintf("histogram_quantile(%s, sum by (%s, le) (%s))", q, by, rate(metric+"_bucket"+selector))
}

// overview is RED per service: the rate, errors and duration of the
// requests every process serves, and of the requests it makes.
func overview() Dashboard {
	const server = "http_server_request_duration_seconds"
	const client = "http_client_request_duration_seconds"
	return Dashboard{File: "overview.json", UID: "microshop-overview", Title: "microshop / Overview (RED)", Panels: []Panel{
		{Title: "Requests served per second, by service", Unit: "reqps", Queries: []Query{
			{Expr: "sum by (job) (" + rate(server+"_count") + ")", Legend: "{{job}}"},
		}},
		{Title: "Share of requests answered 5xx, by service", Unit: "percentunit", Queries: []Query{
			// "or ... * 0": a service that never answered 5xx has no such
			// series; it shows 0, not "no data".
			{Expr: "(sum by (job) (" + rate(server+`_count{http_response_status_class="5xx"}`) + ") or sum by (job) (" + rate(server+"_count") + ") * 0)" +
				" / sum by (job) (" + rate(server+"_count") + ")", Legend: "{{job}}"},
		}},
		{Title: "p99 request duration, by service", Unit: "s", Queries: []Query{
			{Expr: quantile("0.99", server, "", "job"), Legend: "{{job}}"},
		}},
		{Title: "p99 request duration, by route", Unit: "s", Queries: []Query{
			{Expr: quantile("0.99", server, "", "job, http_request_method, http_route"), Legend: "{{job}} {{http_request_method}} {{http_route}}"},
		}},
		{Title: "Outbound requests per second, by caller, peer and status", Unit: "reqps", Queries: []Query{
			{Expr: "sum by (job, peer_service, http_response_status_class) (" + rate(client+"_count") + ")", Legend: "{{job}} → {{peer_service}} {{http_response_status_class}}"},
		}},
		{Title: "p99 outbound request duration, by caller and peer", Unit: "s", Queries: []Query{
			{Expr: quantile("0.99", client, "", "job, peer_service"), Legend: "{{job}} → {{peer_service}}"},
		}},
		{Title: "Targets up", Unit: "short", Queries: []Query{
			{Expr: "up", Legend: "{{job}} {{instance}}"},
		}},
		// pkg/limit: what each service sheds and the limit it sheds at.
		{Title: "Requests shed per second, by service, priority and reason (route, user: 429; adaptive: 503)", Unit: "reqps", Queries: []Query{
			{Expr: "sum by (job, priority, reason) (" + rate("limiter_rejected_total") + ")", Legend: "{{job}} {{priority}} {{reason}}"},
		}},
		{Title: "Share of requests shed, by service", Unit: "percentunit", Queries: []Query{
			{Expr: "sum by (job) (" + rate("limiter_rejected_total") + ") / (sum by (job) (" + rate("limiter_rejected_total") + ") + sum by (job) (" + rate("limiter_admitted_total") + "))", Legend: "{{job}}"},
		}},
		{Title: "Adaptive concurrency limit and requests in flight, by service", Unit: "short", Queries: []Query{
			{Expr: "max by (job) (limiter_limit)", Legend: "limit {{job}}"},
			{Expr: "max by (job) (limiter_inflight)", Legend: "in flight {{job}}"},
		}},
	}}
}

// checkout is the checkout saga: how many finish, how, how fast, and what
// is stuck.
func checkout() Dashboard {
	const def = `definition="checkout"`
	return Dashboard{File: "checkout.json", UID: "microshop-checkout", Title: "microshop / Checkout saga", Panels: []Panel{
		{Title: "Checkouts started and finished per second, by status", Unit: "ops", Queries: []Query{
			{Expr: "sum(" + rate("saga_started_total{"+def+"}") + ")", Legend: "started"},
			{Expr: "sum by (status) (" + rate("saga_finished_total{"+def+"}") + ")", Legend: "{{status}}"},
		}},
		{Title: "Checkouts cancelled per second, by reason", Unit: "ops", Queries: []Query{
			{Expr: "sum by (reason) (" + rate("saga_finished_total{"+def+`,status="FAILED"}`) + ")", Legend: "{{reason}}"},
		}},
		{Title: "Checkout success SLI (objective 95%)", Unit: "percentunit", Queries: []Query{
			{Expr: "1 - slo:checkout_errors:ratio_rate5m", Legend: "5m"},
			{Expr: "1 - slo:checkout_errors:ratio_rate1h", Legend: "1h"},
		}},
		{Title: "Checkout duration p50 and p99, completed", Unit: "s", Queries: []Query{
			{Expr: quantile("0.5", "saga_duration_seconds", `{`+def+`,status="COMPLETED"}`, "definition"), Legend: "p50"},
			{Expr: quantile("0.99", "saga_duration_seconds", `{`+def+`,status="COMPLETED"}`, "definition"), Legend: "p99"},
		}},
		{Title: "Checkout latency SLI: completed within 0.49 s (objective 99%)", Unit: "percentunit", Queries: []Query{
			{Expr: "1 - slo:checkout_slow:ratio_rate5m", Legend: "5m"},
		}},
		{Title: "Sagas in flight, by status", Unit: "short", Queries: []Query{
			{Expr: "max by (status) (saga_instances)", Legend: "{{status}}"},
		}},
		{Title: "Participant replies per second, by result", Unit: "ops", Queries: []Query{
			{Expr: "sum by (result) (" + rate("saga_replies_total") + ")", Legend: "{{result}}"},
		}},
		{Title: "Step duration p95, by step and operation", Unit: "s", Queries: []Query{
			{Expr: quantile("0.95", "saga_step_duration_seconds", "{"+def+"}", "step, operation"), Legend: "{{operation}} {{step}}"},
		}},
		{Title: "Compensations started per second, by step", Unit: "ops", Queries: []Query{
			{Expr: "sum by (step) (" + rate("saga_compensations_total{"+def+"}") + ")", Legend: "{{step}}"},
		}},
		{Title: "Step timeouts and compensations re-sent per second, by step", Unit: "ops", Queries: []Query{
			{Expr: "sum by (step) (" + rate("saga_step_timeouts_total{"+def+"}") + ")", Legend: "timeout {{step}}"},
			{Expr: "sum by (step) (" + rate("saga_compensation_retries_total{"+def+"}") + ")", Legend: "re-sent {{step}}"},
		}},
	}}
}

// kafkaOutbox is the asynchronous path: outboxes draining to Kafka and
// consumers handling what arrives.
func kafkaOutbox() Dashboard {
	return Dashboard{File: "kafka-outbox.json", UID: "microshop-kafka-outbox", Title: "microshop / Kafka and outbox", Panels: []Panel{
		{Title: "Outbox messages waiting, by service", Unit: "short", Queries: []Query{
			{Expr: "max by (job) (outbox_pending_messages)", Legend: "{{job}}"},
		}},
		{Title: "Outbox lag: age of the oldest waiting message", Unit: "s", Queries: []Query{
			{Expr: "max by (job) (outbox_oldest_pending_age_seconds)", Legend: "{{job}}"},
		}},
		{Title: "Outbox messages published and failed per second", Unit: "ops", Queries: []Query{
			{Expr: "sum by (job) (" + rate("outbox_published_total") + ")", Legend: "published {{job}}"},
			{Expr: "sum by (job) (" + rate("outbox_publish_failures_total") + ")", Legend: "failed {{job}}"},
		}},
		{Title: "Messages consumed per second, by topic and outcome", Unit: "ops", Queries: []Query{
			{Expr: "sum by (topic, outcome) (" + rate("messaging_consumed_total") + ")", Legend: "{{topic}} {{outcome}}"},
		}},
		{Title: "Consumer lag: messages waiting, by topic", Unit: "short", Queries: []Query{
			{Expr: "sum by (job, topic) (messaging_consumer_lag_messages)", Legend: "{{job}} {{topic}}"},
		}},
		{Title: "p99 message handling duration, by topic", Unit: "s", Queries: []Query{
			{Expr: quantile("0.99", "messaging_handler_duration_seconds", "", "job, topic"), Legend: "{{job}} {{topic}}"},
		}},
		{Title: "Messages dead-lettered, by topic (total)", Unit: "short", Queries: []Query{
			{Expr: "sum by (job, topic) (messaging_dead_lettered_total)", Legend: "{{job}} {{topic}}"},
		}},
	}}
}

// goRuntime is the processes' Go runtime and resources.
func goRuntime() Dashboard {
	return Dashboard{File: "go-runtime.json", UID: "microshop-go-runtime", Title: "microshop / Go runtime", Panels: []Panel{
		{Title: "CPU, by process", Unit: "percentunit", Queries: []Query{
			{Expr: "sum by (job) (" + rate("process_cpu_seconds_total") + ")", Legend: "{{job}}"},
		}},
		{Title: "Resident memory, by process", Unit: "bytes", Queries: []Query{
			{Expr: "sum by (job) (process_resident_memory_bytes)", Legend: "{{job}}"},
		}},
		{Title: "Heap in use, by process", Unit: "bytes", Queries: []Query{
			{Expr: "sum by (job) (go_memstats_heap_inuse_bytes)", Legend: "{{job}}"},
		}},
		{Title: "Goroutines, by process", Unit: "short", Queries: []Query{
			{Expr: "sum by (job) (go_goroutines)", Legend: "{{job}}"},
		}},
		{Title: "Longest GC pause of the recent cycles, by process", Unit: "s", Queries: []Query{
			{Expr: `max by (job) (go_gc_duration_seconds{quantile="1"})`, Legend: "{{job}}"},
		}},
		{Title: "Open file descriptors, by process", Unit: "short", Queries: []Query{
			{Expr: "sum by (job) (process_open_fds)", Legend: "{{job}}"},
		}},
	}}
}
