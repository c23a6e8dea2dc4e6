package main

import (
	"fmt"
	"os"
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
// one job per process, named as the process (the dashboards and alerts group
// by job), the rules of rulesGlob, and Prometheus itself at self.
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
	for _, t := range append(targets, scrapeTarget{job: "prometheus", addr: self}) {
		fmt.Fprintf(&b, "  - job_name: %s\n    static_configs: [{targets: [%q]}]\n", t.job, t.addr)
	}
	return b.String()
}

// observability are the launcher's Jaeger and Prometheus, for -mode=full.
type observability struct {
	jaegerBin, prometheusBin string
	configDir                string // the repository's observability/
	jaegerQueryPort          int    // its gRPC query port is the one below
	otlpPort                 int    // OTLP/HTTP; OTLP/gRPC is the one below
	prometheusPort           int
}

// otlpEndpoint is the OTEL_EXPORTER_OTLP_ENDPOINT of the services.
func (o observability) otlpEndpoint() string {
	return "http://127.0.0.1:" + strconv.Itoa(o.otlpPort)
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
		URL:       "http://" + addr(o.jaegerQueryPort),
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
