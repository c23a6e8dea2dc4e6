// Command launcher runs the whole shop natively, without Docker: a
// Kafka-protocol broker and the services, each as its own process.
//
// It starts the processes one by one in dependency order and waits for each
// to be ready (the broker to answer Kafka requests, each service's /readyz to
// answer 200) before starting the next, prints every line the processes write
// prefixed with the process's name, prints the URLs once all are ready, and on
// SIGINT/SIGTERM stops them in reverse order, each gracefully (SIGTERM, then
// SIGKILL after a deadline). It exits 0 only if every process exited 0.
// When a process exits on its own meanwhile it stops the others, unless
// -restart (make run and make run-full give it) and the process is one of
// the shop's services: then it starts that one again, as a service manager
// would after a crash or a kill -9 (the workshop's lab 4 kills order).
//
// In -mode=full it first starts a throwaway PostgreSQL cluster under the run
// directory (on -postgres-port, with any -postgres-setting) and points each
// service at its own database there; in the default -mode=embedded the
// services use SQLite files.
//
// Given -jaeger and -prometheus (make run-full gives both), it also starts
// Jaeger, before the services, which then export their traces to it
// (OTEL_EXPORTER_OTLP_ENDPOINT), and Prometheus, after them, scraping every
// process; their URLs are printed with the others.
//
// Given -probe (make run-full gives it), it asks the eBPF probe
// (observability/ebpf/cmd/probe -check) whether it can load here: if so it
// starts it before the services, watching them by name and serving its
// metrics on -probe-port, and Prometheus scrapes it; if not (not root, no
// kernel BTF, lockdown) it says why and runs the stack without it.
//
// Given -consul (make run-full gives it) in -mode=full, it starts a Consul
// agent first — dev mode, bound to 127.0.0.1, UI and update checks off — and
// gives the services CONSUL_HTTP_ADDR: each registers itself there, and the
// gateway finds order and inventory through it instead of fixed URLs.
//
// Given -replicas N (with -mode=full and -consul), it runs N replicas of
// order, inventory and payment instead of one: replica r (from 2) is
// process <service>-r on the service's port + 100×(r−1), sharing its
// service's database and consumer group; the gateway spreads requests over
// the replicas Consul holds, and the topics' partitions are split among
// them. A scale-out on one machine, as bench -replicas measures it.
//
// It also starts the services added with `make new-service`, listed in
// deploy/local/internal/added (built in), after order and before the
// gateway: each with its own database (SQLite file or PostgreSQL database)
// and the broker, registered in Consul, exporting traces and scraped by
// Prometheus like the shop's own.
//
// The supervision (start in order, readiness, graceful stop in reverse) is
// package supervise, which the chaos harness (cmd/chaos) shares.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/deploy/local/internal/supervise"
	"github.com/microshop/microshop/pkg/discovery/devagent"
	"github.com/microshop/microshop/pkg/pgcluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "launcher:", err)
		os.Exit(1)
	}
}

// pspOffset is the payment provider simulator's port relative to -port-base
// (8090 natively), apart from the shop's own services.
const pspOffset = 10

// replicaPortStep is how far replica r's port lies from replica r−1's
// (-replicas): beyond the offsets of the services added with make
// new-service, unless there are about 90 of them (parseFlags refuses).
const replicaPortStep = 100

// maxReplicas bounds -replicas (the ports of 9 replicas span 800).
const maxReplicas = 9

// options are the launcher's flags.
type options struct {
	mode         string
	dir          string
	bin          string
	portBase     int
	brokerPort   int
	readyTimeout time.Duration
	stopTimeout  time.Duration
	obs          observability
	consulBin    string
	consulPort   int      // HTTP API; the agent's server and gossip ports are the next three
	pgPort       int      // -mode full: the cluster's port; 0 picks a free one
	pgSettings   []string // -mode full: more server settings, name=value
	restart      bool     // restart a service that dies instead of stopping the stack
	replicas     int      // of order, inventory and payment; more than 1 in -mode full with Consul
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	services, err := added.Services()
	if err != nil {
		return o, err
	}
	maxOffset := added.MaxOffset(services)
	fs := flag.NewFlagSet("launcher", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.mode, "mode", "embedded", "embedded (SQLite files) or full (a throwaway PostgreSQL cluster)")
	fs.StringVar(&o.dir, "dir", ".run", "directory for runtime data (databases, broker log, Postgres cluster)")
	fs.StringVar(&o.bin, "bin", ".run/bin", "directory holding the built binaries")
	fs.IntVar(&o.portBase, "port-base", 8080, "gateway port; order, inventory and payment listen on the next three, the payment provider simulator on port-base+10, services added with make new-service on port-base plus their offset in "+added.File)
	fs.IntVar(&o.brokerPort, "broker-port", 9092, "Kafka broker port")
	fs.DurationVar(&o.readyTimeout, "ready-timeout", time.Minute, "how long each process may take to become ready")
	fs.DurationVar(&o.stopTimeout, "stop-timeout", 20*time.Second, "how long each process may take to stop before it is killed")
	fs.StringVar(&o.obs.jaegerBin, "jaeger", "", "Jaeger v2 binary to start, the services exporting traces to it (empty: no Jaeger, nothing exported)")
	fs.StringVar(&o.obs.prometheusBin, "prometheus", "", "Prometheus binary to start, scraping every process (empty: no Prometheus)")
	fs.StringVar(&o.obs.configDir, "observability", "observability", "the repository's observability/ directory: Jaeger config, Prometheus rules")
	fs.IntVar(&o.obs.jaegerQueryPort, "jaeger-port", 16686, "Jaeger query port (HTTP API); its gRPC query port is the one below")
	fs.IntVar(&o.obs.otlpPort, "otlp-port", 4318, "Jaeger's OTLP/HTTP port; OTLP/gRPC is the one below")
	fs.IntVar(&o.obs.prometheusPort, "prometheus-port", 9090, "Prometheus port")
	fs.StringVar(&o.obs.probeBin, "probe", "", "eBPF probe binary to start watching the services when it can load here (root); when it cannot, the stack runs without it (empty: no probe)")
	fs.IntVar(&o.obs.probePort, "probe-port", 9400, "the eBPF probe's metrics port")
	fs.StringVar(&o.consulBin, "consul", "", "Consul binary to start in -mode=full, the services registering there and the gateway resolving through it (empty: no Consul, fixed addresses)")
	fs.IntVar(&o.consulPort, "consul-port", 8500, "Consul's HTTP API port; its server, LAN and WAN gossip ports are the next three")
	fs.BoolVar(&o.restart, "restart", false, "restart a service (gateway, order, inventory, payment, psp) that exits while the stack runs — killed, crashed — instead of stopping the stack; the infrastructure's exit still stops it")
	fs.IntVar(&o.replicas, "replicas", 1, fmt.Sprintf("replicas of order, inventory and payment (1 to %d; more than 1 needs -mode=full and -consul): replica r listens on its service's port + %d×(r−1)", maxReplicas, replicaPortStep))
	fs.IntVar(&o.pgPort, "postgres-port", 0, "-mode full: the PostgreSQL cluster's port on 127.0.0.1; 0 picks a free one")
	fs.Func("postgres-setting", "-mode full: a server setting name=value for the PostgreSQL cluster, e.g. shared_preload_libraries=pg_stat_statements (repeatable)", func(s string) error {
		if name, _, ok := strings.Cut(s, "="); !ok || name == "" {
			return fmt.Errorf("%q is not name=value", s)
		}
		o.pgSettings = append(o.pgSettings, s)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	case o.mode != "embedded" && o.mode != "full":
		return o, fmt.Errorf("-mode: %q is not embedded or full", o.mode)
	case o.portBase < 1 || o.portBase > 65535-maxOffset:
		return o, fmt.Errorf("-port-base: %d is not a port from 1 to %d", o.portBase, 65535-maxOffset)
	case o.brokerPort < 1 || o.brokerPort > 65535:
		return o, fmt.Errorf("-broker-port: %d is not a port from 1 to 65535", o.brokerPort)
	case o.replicas < 1 || o.replicas > maxReplicas:
		return o, fmt.Errorf("-replicas: %d is not from 1 to %d", o.replicas, maxReplicas)
	case o.replicas > 1 && (o.mode != "full" || o.consulBin == ""):
		return o, fmt.Errorf("-replicas: %d replicas need -mode=full (a database they share; SQLite files are one process's) and -consul (where the gateway finds them)", o.replicas)
	case o.replicas > 1 && maxOffset >= replicaPortStep:
		return o, fmt.Errorf("-replicas: the added services reach port offset %d, where the second replicas would listen (+%d)", maxOffset, replicaPortStep)
	case !validPort(o.portBase + replicaPortStep*(o.replicas-1) + 3):
		return o, fmt.Errorf("-port-base: %d leaves no port for replica %d (+%d)", o.portBase, o.replicas, replicaPortStep*(o.replicas-1)+3)
	case !validPort(o.obs.jaegerQueryPort-1) || !validPort(o.obs.jaegerQueryPort):
		return o, fmt.Errorf("-jaeger-port: %d and the port below must be ports from 1 to 65535", o.obs.jaegerQueryPort)
	case !validPort(o.obs.otlpPort-1) || !validPort(o.obs.otlpPort):
		return o, fmt.Errorf("-otlp-port: %d and the port below must be ports from 1 to 65535", o.obs.otlpPort)
	case o.pgPort != 0 && !validPort(o.pgPort):
		return o, fmt.Errorf("-postgres-port: %d is not 0 or a port from 1 to 65535", o.pgPort)
	case !validPort(o.obs.prometheusPort):
		return o, fmt.Errorf("-prometheus-port: %d is not a port from 1 to 65535", o.obs.prometheusPort)
	case !validPort(o.obs.probePort):
		return o, fmt.Errorf("-probe-port: %d is not a port from 1 to 65535", o.obs.probePort)
	case !validPort(o.consulPort) || !validPort(o.consulPort+3):
		return o, fmt.Errorf("-consul-port: %d and the three ports above must be ports from 1 to 65535", o.consulPort)
	case o.consulBin != "" && o.mode != "full":
		return o, fmt.Errorf("-consul: Consul runs in -mode=full only; the embedded mode has static addresses")
	case o.readyTimeout <= 0:
		return o, fmt.Errorf("-ready-timeout: must be positive")
	case o.stopTimeout <= 0:
		return o, fmt.Errorf("-stop-timeout: must be positive")
	}
	return o, nil
}

func validPort(p int) bool { return p >= 1 && p <= 65535 }

func run(ctx context.Context, args []string, stdout io.Writer) (err error) {
	o, err := parseFlags(args, stdout)
	if err != nil {
		return err
	}
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	if o.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.obs.configDir, err = filepath.Abs(o.obs.configDir); err != nil {
		return err
	}
	services, err := added.Services()
	if err != nil {
		return err
	}
	out := supervise.NewOutput(stdout, nil)
	databases := map[string]string{}
	for _, name := range []string{"order", "inventory", "payment"} {
		databases[name] = "sqlite:" + filepath.Join(o.dir, "data", name+".db")
	}
	for _, s := range services {
		databases[s.Name] = "sqlite:" + filepath.Join(o.dir, "data", s.Name+".db")
	}
	if o.mode == "full" {
		out.Printf("launcher", "starting a throwaway PostgreSQL cluster under %s", o.dir)
		if err := os.MkdirAll(o.dir, 0o755); err != nil {
			return err
		}
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: o.dir, Port: o.pgPort, Log: out.Writer("postgres"), Settings: o.pgSettings})
		if err != nil {
			return err
		}
		defer func() {
			out.Printf("launcher", "stopping PostgreSQL")
			err = errors.Join(err, cluster.Stop(context.WithoutCancel(ctx)))
		}()
		for name := range databases {
			if databases[name], err = cluster.CreateDatabase(ctx, name+"db"); err != nil {
				return err
			}
		}
		out.Printf("launcher", "PostgreSQL ready on 127.0.0.1:%d", cluster.Port())
	}

	broker := "127.0.0.1:" + strconv.Itoa(o.brokerPort)
	addr := func(offset int) string { return "127.0.0.1:" + strconv.Itoa(o.portBase+offset) }
	var telemetryEnv []string
	if o.obs.jaegerBin != "" {
		telemetryEnv = append(telemetryEnv, "OTEL_EXPORTER_OTLP_ENDPOINT="+o.obs.otlpEndpoint())
	}
	var discoveryEnv []string
	if o.consulBin != "" {
		discoveryEnv = append(discoveryEnv, "CONSUL_HTTP_ADDR=127.0.0.1:"+strconv.Itoa(o.consulPort))
	}
	var scrape []scrapeTarget
	service := func(name, envPrefix string, offset int, env ...string) *supervise.Process {
		scrape = append(scrape, scrapeTarget{job: name, addr: addr(offset)})
		if name != "psp" { // a third party: not in the shop's catalog
			env = append(env, discoveryEnv...)
		}
		return &supervise.Process{
			Name:    name,
			Path:    filepath.Join(o.bin, name),
			Env:     append(append(env, telemetryEnv...), envPrefix+"_HTTP_ADDR="+addr(offset)),
			URL:     "http://" + addr(offset),
			Restart: o.restart,
		}
	}
	// replicated returns the -replicas processes of a saga service: the
	// first named as the service, replica r as <name>-r on the port
	// replicaPortStep×(r−1) above; one Prometheus job holds them all.
	replicated := func(name, envPrefix string, offset int, env ...string) []*supervise.Process {
		var procs []*supervise.Process
		for r := 1; r <= o.replicas; r++ {
			p := service(name, envPrefix, offset+replicaPortStep*(r-1), env...)
			if r > 1 {
				p.Name = name + "-" + strconv.Itoa(r)
			}
			procs = append(procs, p)
		}
		return procs
	}
	pspURL := "http://" + addr(pspOffset)
	gatewayEnv := []string{"GATEWAY_INVENTORY_URL=http://" + addr(2), "GATEWAY_ORDER_URL=http://" + addr(1), "GATEWAY_PSP_URL=" + pspURL}
	if o.obs.jaegerBin != "" {
		// The storefront's order page shows the order's trace from it.
		gatewayEnv = append(gatewayEnv, "GATEWAY_JAEGER_URL="+o.obs.queryURL())
	}
	procs := []*supervise.Process{
		{
			Name: "broker",
			Path: filepath.Join(o.bin, "broker"),
			Args: []string{"-addr", broker, "-data-dir", filepath.Join(o.dir, "kafka")},
			URL:  "kafka://" + broker,
		},
		service("psp", "PSP", pspOffset),
	}
	procs = append(procs, replicated("inventory", "INVENTORY", 2, "INVENTORY_DATABASE_URL="+databases["inventory"], "INVENTORY_KAFKA_BROKERS="+broker)...)
	procs = append(procs, replicated("payment", "PAYMENT", 3, "PAYMENT_DATABASE_URL="+databases["payment"], "PAYMENT_KAFKA_BROKERS="+broker,
		"PAYMENT_PSP_URL="+pspURL)...)
	procs = append(procs, replicated("order", "ORDER", 1, "ORDER_DATABASE_URL="+databases["order"], "ORDER_KAFKA_BROKERS="+broker)...)
	for _, s := range services {
		prefix := strings.TrimSuffix(s.EnvPrefix(), "_")
		procs = append(procs, service(s.Name, prefix, s.PortOffset,
			prefix+"_DATABASE_URL="+databases[s.Name], prefix+"_KAFKA_BROKERS="+broker))
	}
	procs = append(procs, service("gateway", "GATEWAY", 0, gatewayEnv...))
	if o.obs.probeBin != "" {
		// By path: a process of the same name from another stack on the
		// machine (another checkout, a test) is not this stack's.
		var watched []string
		for _, t := range scrape {
			if path := filepath.Join(o.bin, t.job); !slices.Contains(watched, path) {
				watched = append(watched, path)
			}
		}
		probe, err := o.obs.probe(ctx, watched)
		switch {
		case errors.Is(err, errNoProbe):
			out.Printf("launcher", "eBPF probe not started, the stack runs without it: %v", err)
		case err != nil:
			return err
		default:
			procs = append([]*supervise.Process{probe}, procs...) // before the services: it sees all they serve
			scrape = append(scrape, scrapeTarget{job: "probe", addr: strings.TrimPrefix(probe.URL, "http://")})
		}
	}
	if o.obs.jaegerBin != "" {
		procs = append([]*supervise.Process{o.obs.jaeger()}, procs...)
	}
	if o.consulBin != "" {
		procs = append([]*supervise.Process{consul(o.consulBin, o.consulPort)}, procs...)
	}
	if o.obs.prometheusBin != "" {
		prom, err := o.obs.prometheus(o.dir, scrape)
		if err != nil {
			return err
		}
		procs = append(procs, prom)
	}
	return supervise.Run(ctx, out, procs, o.readyTimeout, o.stopTimeout)
}

// consul returns the Consul agent of the full mode, as DESIGN.md runs it
// natively (package devagent: dev mode, loopback only, HTTP API on port and
// server and gossip on the next three). It is ready once it answers; the
// services retry their registration until it has a leader.
func consul(bin string, port int) *supervise.Process {
	return &supervise.Process{
		Name:      "consul",
		Path:      bin,
		Args:      devagent.Args("microshop", devagent.Consecutive(port)),
		URL:       "http://127.0.0.1:" + strconv.Itoa(port),
		ReadyPath: "/v1/status/leader",
	}
}
