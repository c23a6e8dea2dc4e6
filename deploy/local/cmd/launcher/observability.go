package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/microshop/microshop/deploy/local/internal/supervise"
)

// scrapeTarget is a process Prometheus scrapes: its job name and host:port.
type scrapeTarget struct {
	job  string
	addr string
}

// prometheusConfig returns the Prometheus configuration of the native stack:
// one job per service, named as the service, with a target per replica
// (the dashboards and alerts group by job), the rules of rulesGlob, and
// Prometheus itself at self.
// observability/prometheus/native.yml is this with the default ports
// (TestNativePrometheusConfigIsCurrent keeps it so).
func prometheusConfig(targets []scrapeTarget, rulesGlob, self string) string {
	var b strings.Builder
	b.WriteString(`# Prometheus of the native stack (make run-full), written by the launcher
# (deploy/local/cmd/launcher) for the ports it was given; this copy is for
# the default ports. The compose stack's is compose.yml.
global:
  scrape_interval: 5s
  evaluation_interval: 5s

rule_files:
  - ` + rulesGlob + `

scrape_configs:
`)
	var jobs []string
	addrs := map[string][]string{}
	for _, t := range append(targets, scrapeTarget{job: "prometheus", addr: self}) {
		if addrs[t.job] == nil {
			jobs = append(jobs, t.job)
		}
		addrs[t.job] = append(addrs[t.job], strconv.Quote(t.addr))
	}
	for _, job := range jobs {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs: [{targets: [%s]}]\n", job, strings.Join(addrs[job], ", "))
	}
	return b.String()
}

// observability are the launcher's Jaeger, Prometheus and eBPF probe, for
// -mode=full.
type observability struct {
	jaegerBin, prometheusBin string
	probeBin                 string
	configDir                string // the repository's observability/
	jaegerQueryPort          int    // its gRPC query port is the one below
	otlpPort                 int    // OTLP/HTTP; OTLP/gRPC is the one below
	prometheusPort           int
	probePort                int // its metrics
}

// probeRoutes are the route patterns of the stack's HTTP servers, by which
// the probe labels the paths it sees (PROBE_ROUTES): one series per route,
// as the services' own metrics have, not one per order id. A path none
// matches is labelled "unmatched".
var probeRoutes = []string{
	"/healthz", "/readyz", "/metrics", "/{$}", // {$}: "/" alone, the storefront
	// gateway
	"/images/{file}", "/api/v1/openapi.json", "/api/v1/login", "/api/v1/products", "/api/v1/products/{sku}",
	"/api/v1/orders", "/api/v1/orders/{id}", "/api/v1/admin/products/{sku}/stock-adjustments", "/api/v1/admin/psp/faults",
	// inventory, order, payment
	"/v1/products", "/v1/products/{sku}", "/v1/products/{sku}/stock-adjustments",
	"/v1/orders", "/v1/orders/{id}", "/v1/payments", "/v1/payments/{id}",
	// psp
	"/v1/charges", "/v1/refunds", "/v1/admin/faults", "/v1/admin/charges", "/v1/admin/refunds",
}

// errNoProbe: the probe cannot load here; the stack runs without it.
var errNoProbe = errors.New("the eBPF probe cannot load here")

// probe returns the eBPF probe process (observability/ebpf/cmd/probe)
// watching the executables of targets (file names or absolute paths), or an error wrapping
// errNoProbe that says why it cannot load here (not root, no BTF, kernel
// locked down) — its own "probe -check" answer.
func (o observability) probe(ctx context.Context, targets []string) (*supervise.Process, error) {
	var stderr bytes.Buffer
	check := exec.CommandContext(ctx, o.probeBin, "-check")
	check.Stderr = &stderr
	if err := check.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == 2 {
			return nil, fmt.Errorf("%w: %s", errNoProbe, strings.TrimSpace(strings.TrimPrefix(stderr.String(), "probe: cannot load: ")))
		}
		return nil, fmt.Errorf("%s -check: %v: %s", o.probeBin, err, stderr.Bytes())
	}
	addr := "127.0.0.1:" + strconv.Itoa(o.probePort)
	return &supervise.Process{
		Name: "probe",
		Path: o.probeBin,
		Env: []string{
			"PROBE_METRICS_ADDR=" + addr,
			"PROBE_PROCESSES=" + strings.Join(targets, ","),
			"PROBE_ROUTES=" + strings.Join(probeRoutes, ","),
		},
		URL: "http://" + addr,
	}, nil
}

// otlpEndpoint is the OTEL_EXPORTER_OTLP_ENDPOINT of the services.
func (o observability) otlpEndpoint() string {
	return "http://127.0.0.1:" + strconv.Itoa(o.otlpPort)
}

// queryURL is the base URL of Jaeger's query API (the gateway's
// GATEWAY_JAEGER_URL).
func (o observability) queryURL() string {
	return "http://127.0.0.1:" + strconv.Itoa(o.jaegerQueryPort)
}

// jaeger returns the Jaeger process: the native configuration, traces in
// memory, every port on 127.0.0.1.
func (o observability) jaeger() *supervise.Process {
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	return &supervise.Process{
		Name: "jaeger",
		Path: o.jaegerBin,
		Args: []string{"--config", filepath.Join(o.configDir, "jaeger", "native.yaml")},
		Env: []string{
			"JAEGER_QUERY_HTTP=" + addr(o.jaegerQueryPort), "JAEGER_QUERY_GRPC=" + addr(o.jaegerQueryPort-1),
			"JAEGER_OTLP_HTTP=" + addr(o.otlpPort), "JAEGER_OTLP_GRPC=" + addr(o.otlpPort-1),
		},
		URL:       o.queryURL(),
		ReadyPath: "/api/services",
	}
}

// prometheus writes the configuration scraping targets under dir and
// returns the Prometheus process, its data under dir too.
func (o observability) prometheus(dir string, targets []scrapeTarget) (*supervise.Process, error) {
	dir = filepath.Join(dir, "prometheus")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	self := "127.0.0.1:" + strconv.Itoa(o.prometheusPort)
	config := prometheusConfig(targets, filepath.Join(o.configDir, "prometheus", "rules", "*.yml"), self)
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		return nil, err
	}
	return &supervise.Process{
		Name: "prometheus",
		Path: o.prometheusBin,
		Args: []string{
			"--config.file=" + file,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--storage.tsdb.retention.time=1d",
			"--web.listen-address=" + self,
			"--enable-feature=exemplar-storage", // trace ids on the HTTP histograms
		},
		URL:       "http://" + self,
		ReadyPath: "/-/ready",
	}, nil
}
