package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/microshop/microshop/observability/ebpf/internal/targettest"
	"github.com/microshop/microshop/observability/ebpf/probe"
	"github.com/microshop/microshop/pkg/servicetest"
)

// requireProbe skips the test when this process cannot load the probe,
// or fails it under CI=true, where the machine must be able to.
func requireProbe(t *testing.T) {
	t.Helper()
	if err := (probe.System{}).Check(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the probe cannot load here: %v", err)
		}
		t.Skipf("the probe cannot load here: %v", err)
	}
}

// request is one request the test sends, and the status it must get.
type request struct {
	method, path string
	status       int
}

// route is a request's method, path and status: the labels the probe's
// request counts and the target's own counts share.
type route struct {
	Method, Path string
	Status       int
}

// TestAgreement attaches the probe to a real Go HTTP server and checks
// that its request counts per route and status are the server's own, that
// a refused connection is counted as failed, and that a restarted server
// is watched again.
func TestAgreement(t *testing.T) {
	requireProbe(t)
	// A name no other process has: the probe watches by name.
	name := fmt.Sprintf("agreement-%d", os.Getpid())
	exe := targettest.Build(t, t.TempDir(), name)
	target := targettest.Start(t, exe)

	env := map[string]string{
		"PROBE_METRICS_ADDR":  servicetest.FreeAddr(t),
		"PROBE_PROCESSES":     name,
		"PROBE_SCAN_INTERVAL": "100ms",
	}
	svc := servicetest.Start(t, run, env, "PROBE_METRICS_ADDR")
	metrics := func() map[string]*dto.MetricFamily { return scrape(t, svc.URL) }
	waitFor(t, "the target's HTTP server traced", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 1
	})

	closed := servicetest.FreeAddr(t) // nothing listens there
	var sent []request
	for range 40 {
		sent = append(sent, request{"GET", "/items", 200})
	}
	for range 15 {
		sent = append(sent, request{"POST", "/orders", 201})
	}
	for range 7 {
		sent = append(sent, request{"GET", "/boom", 500})
	}
	for range 5 {
		sent = append(sent, request{"GET", "/empty", 200}) // writes nothing: net/http's 200
	}
	for range 3 {
		sent = append(sent, request{"GET", "/nothing-here", 404})
	}
	sent = append(sent, request{"GET", "/dial?addr=" + closed, 502})
	for range 2 {
		sent = append(sent, request{"GET", "/dial?addr=" + env["PROBE_METRICS_ADDR"], 200})
	}
	want := send(t, target.URL, sent)

	// The server's own counts: what it served, as it counted it.
	own := ownCounts(t, target)
	if diff := cmp.Diff(want, own); diff != "" {
		t.Fatalf("the target's own counts are not what was sent (-sent +counted):\n%s", diff)
	}
	var got map[route]int
	waitFor(t, "the probe's counts to equal the server's", func() bool {
		got = requestCounts(metrics(), name)
		return cmp.Equal(own, got)
	}, func() string { return cmp.Diff(own, got) })
	t.Logf("probe and server agree on %d requests: %v", len(sent), got)

	// TCP events arrive on their own ring buffer: poll for them too.
	failedTo := map[string]string{"process": name, "peer": closed}
	var failures float64
	waitFor(t, "one failed connection counted", func() bool {
		failures = value(metrics(), "ebpf_tcp_connection_failures_total", failedTo)
		return failures == 1
	}, func() string { return fmt.Sprintf("failed connections to %s = %v, want 1", closed, failures) })
	openedTo := map[string]string{"process": name, "direction": "outbound", "peer": env["PROBE_METRICS_ADDR"]}
	var opened float64
	waitFor(t, "two outbound connections counted", func() bool {
		opened = value(metrics(), "ebpf_tcp_connections_opened_total", openedTo)
		return opened == 2
	}, func() string {
		return fmt.Sprintf("connections opened to %s = %v, want 2", env["PROBE_METRICS_ADDR"], opened)
	})
	if inbound := value(metrics(), "ebpf_tcp_connections_opened_total", map[string]string{"process": name, "direction": "inbound", "peer": "127.0.0.1"}); inbound < 1 {
		t.Errorf("inbound connections from 127.0.0.1 = %v, want at least 1", inbound)
	}

	// A restarted target: the old process is dropped, the new one watched,
	// and its requests add to the same series.
	target.Stop()
	waitFor(t, "the stopped target dropped", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 0
	})
	// Two replicas of it, as the chaos harness runs them: one set of uprobes
	// on their executable serves both, and requests served at once by both
	// are counted once each, under the one process name.
	restarted := targettest.Start(t, exe)
	replica := targettest.Start(t, exe)
	waitFor(t, "the restarted target and a replica traced", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 2
	})
	again := make([]request, 25)
	for i := range again {
		again[i] = request{"GET", "/items", 200}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for _, tg := range []*targettest.Target{restarted, replica} {
		for range 2 { // two clients each
			wg.Go(func() {
				_, err := sendRequests(tg.URL, again)
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	items := route{"GET", "/items", 200}
	for _, tg := range []*targettest.Target{restarted, replica} {
		if n := ownCounts(t, tg)[items]; n != 2*len(again) {
			t.Fatalf("a replica counted %d GET /items, want %d", n, 2*len(again))
		}
	}
	wantItems := own[items] + 4*len(again)
	waitFor(t, "the replicas' requests counted", func() bool {
		got = requestCounts(metrics(), name)
		return got[items] == wantItems
	}, func() string { return fmt.Sprintf("GET /items 200: %d, want %d", got[items], wantItems) })
	t.Logf("after the restart: GET /items 200 = %d (%d before, 2 replicas × %d after)", got[items], own[items], 2*len(again))

	if lost := value(metrics(), "ebpf_probe_events_lost_total", map[string]string{"source": "http"}); lost != 0 {
		t.Errorf("%v HTTP events lost", lost)
	}
}

// send sends every request in order, checks its status and returns the
// count per route.
func send(t *testing.T, base string, reqs []request) map[route]int {
	t.Helper()
	counts, err := sendRequests(base, reqs)
	if err != nil {
		t.Fatal(err)
	}
	return counts
}

func sendRequests(base string, reqs []request) (map[route]int, error) {
	counts := make(map[route]int)
	for _, r := range reqs {
		req, err := http.NewRequest(r.method, base+r.path, nil)
		if err != nil {
			return nil, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", r.method, r.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != r.status {
			return nil, fmt.Errorf("%s %s: status %d, want %d", r.method, r.path, resp.StatusCode, r.status)
		}
		path, _, _ := strings.Cut(r.path, "?")
		counts[route{r.method, path, r.status}]++
	}
	return counts, nil
}

// ownCounts are the target's counts of what it served, but for the
// requests for its counts.
func ownCounts(t *testing.T, target *targettest.Target) map[route]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	counts, err := target.Counts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	own := make(map[route]int)
	for _, c := range counts {
		if c.Path != "/counts" {
			own[route{c.Method, c.Path, c.Status}] = c.Count
		}
	}
	return own
}

// requestCounts are the probe's request counts of process per route, but
// for the requests for the target's counts.
func requestCounts(m map[string]*dto.MetricFamily, process string) map[route]int {
	counts := make(map[route]int)
	for _, metric := range m["ebpf_http_server_request_duration_seconds"].GetMetric() {
		l := labels(metric)
		if l["process"] != process || l["http_route"] == "/counts" {
			continue
		}
		var status int
		fmt.Sscan(l["http_response_status_code"], &status)
		counts[route{l["http_request_method"], l["http_route"], status}] = int(metric.GetHistogram().GetSampleCount())
	}
	return counts
}

func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	m, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return m
}

// value is the value of the counter or gauge of family whose labels
// include want; 0 if there is none.
func value(m map[string]*dto.MetricFamily, family string, want map[string]string) float64 {
	for _, metric := range m[family].GetMetric() {
		l := labels(metric)
		match := true
		for k, v := range want {
			match = match && l[k] == v
		}
		if match {
			return metric.GetCounter().GetValue() + metric.GetGauge().GetValue()
		}
	}
	return 0
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string)
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// waitFor polls cond until it holds, or fails the test after 30s with
// what explain says (if given).
func waitFor(t *testing.T, what string, cond func() bool, explain ...func() string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			msg := ""
			for _, e := range explain {
				msg += "\n" + e()
			}
			t.Fatalf("waited 30s for %s%s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMissingCapability runs the probe without privileges: it must exit
// with status 2 and name the capabilities it lacks.
func TestMissingCapability(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "probe")
	if out, err := exec.Command("go", "build", "-o", exe, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(exe)
	if os.Geteuid() == 0 { // as nobody: a user without capabilities
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Skipf("running as root and no setpriv to drop privileges: %v", err)
		}
		cmd = exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", exe)
	}
	cmd.Env = []string{"PROBE_METRICS_ADDR=" + servicetest.FreeAddr(t)}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Fatalf("probe without privileges: %v, want exit status 2; stderr:\n%s", err, stderr.String())
	}
	want := "probe: cannot load: missing capability CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run the probe as root or grant them\n"
	if got := stderr.String(); got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	servicetest.CheckConfigRejected(t, run, map[string]string{
		"PROBE_METRICS_ADDR":  "nowhere",
		"PROBE_PIDS":          "1,two",
		"PROBE_SCAN_INTERVAL": "often",
		"PROBE_PROGRAM_STATS": "maybe",
		"PROBE_LOG_LEVEL":     "chatty",
	})
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "PROBE_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}

// TestAgreementGateway attaches the probe to the shop's real gateway (Gin
// on net/http), alone, with the services behind it down: the probe's
// counts per route pattern and status must be the statuses the client
// received, and the gateway's refused calls to inventory failed connections.
func TestAgreementGateway(t *testing.T) {
	requireProbe(t)
	name := fmt.Sprintf("gateway-agreement-%d", os.Getpid())
	exe := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-o", exe, "github.com/microshop/microshop/services/gateway/cmd/gateway")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the gateway: %v\n%s", err, out)
	}
	addr, down := servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	gateway := exec.Command(exe)
	gateway.Env = []string{
		"GATEWAY_HTTP_ADDR=" + addr,
		"GATEWAY_LOG_LEVEL=error",
		"GATEWAY_INVENTORY_URL=http://" + down,
		"GATEWAY_ORDER_URL=http://" + down,
		"GATEWAY_PSP_URL=http://" + down,
	}
	gateway.Stderr = os.Stderr
	if err := gateway.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gateway.Process.Kill(); gateway.Wait() })
	base := "http://" + addr
	waitFor(t, "the gateway live", func() bool {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})

	env := map[string]string{
		"PROBE_METRICS_ADDR":  servicetest.FreeAddr(t),
		"PROBE_PROCESSES":     name,
		"PROBE_SCAN_INTERVAL": "100ms",
		"PROBE_ROUTES":        "GET /healthz,GET /api/v1/openapi.json,GET /api/v1/products/{sku}",
	}
	svc := servicetest.Start(t, run, env, "PROBE_METRICS_ADDR")
	metrics := func() map[string]*dto.MetricFamily { return scrape(t, svc.URL) }
	waitFor(t, "the gateway's HTTP server traced", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 1
	})

	// What the client received, by route pattern.
	received := make(map[route]int)
	get := func(path, pattern string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		received[route{"GET", pattern, resp.StatusCode}]++
	}
	for range 20 {
		get("/healthz", "/healthz")
	}
	for range 5 {
		get("/api/v1/openapi.json", "/api/v1/openapi.json")
	}
	for i := range 6 { // inventory is down: the gateway answers an error
		get(fmt.Sprintf("/api/v1/products/SKU-%d", i), "/api/v1/products/{sku}")
	}
	for range 4 {
		get("/api/v1/no-such-route", "unmatched")
	}

	var got map[route]int
	waitFor(t, "the probe's counts to equal the statuses received", func() bool {
		got = requestCounts(metrics(), name)
		return cmp.Equal(received, got)
	}, func() string { return cmp.Diff(received, got) })
	t.Logf("probe and client agree on the gateway: %v", got)

	// The gateway's own RED histogram (pkg/telemetry, the SDK side) counts
	// the same requests: per route template and status class, the probe's
	// counts must equal it. Gin names a parameter :sku where the probe's
	// patterns say {sku}; /healthz is not observed by the SDK (probes would
	// drown the dashboards), so it is left out.
	sdk := make(map[route]int)
	for _, metric := range scrape(t, base)["http_server_request_duration_seconds"].GetMetric() {
		l := labels(metric)
		path := strings.ReplaceAll(l["http_route"], ":sku", "{sku}")
		var class int
		fmt.Sscanf(l["http_response_status_class"], "%dxx", &class)
		sdk[route{l["http_request_method"], path, class}] += int(metric.GetHistogram().GetSampleCount())
	}
	probe := make(map[route]int)
	for r, n := range got {
		if r.Path != "/healthz" {
			probe[route{r.Method, r.Path, r.Status / 100}] += n
		}
	}
	if diff := cmp.Diff(probe, sdk); diff != "" {
		t.Errorf("the probe's requests by route and status class and the gateway's own http_server_request_duration_seconds differ (-probe +sdk):\n%s", diff)
	}
	t.Logf("probe and the gateway's SDK metrics agree: %v", sdk)

	refused := map[string]string{"process": name, "peer": down}
	var failures float64
	waitFor(t, "the gateway's refused calls counted", func() bool {
		failures = value(metrics(), "ebpf_tcp_connection_failures_total", refused)
		return failures >= 1
	})
	t.Logf("the gateway's failed connections to %s: %v", down, failures)
}

// TestRetransmitsAndTimeouts makes the target connect to a listener whose
// accept queue is full: the kernel drops its SYNs, the target's kernel
// retransmits them until its dial times out. The probe must count the
// retransmissions and one failed connection.
func TestRetransmitsAndTimeouts(t *testing.T) {
	requireProbe(t)
	name := fmt.Sprintf("retransmit-%d", os.Getpid())
	target := targettest.Start(t, targettest.Build(t, t.TempDir(), name))
	env := map[string]string{
		"PROBE_METRICS_ADDR":  servicetest.FreeAddr(t),
		"PROBE_PROCESSES":     name,
		"PROBE_SCAN_INTERVAL": "100ms",
	}
	svc := servicetest.Start(t, run, env, "PROBE_METRICS_ADDR")
	metrics := func() map[string]*dto.MetricFamily { return scrape(t, svc.URL) }
	waitFor(t, "the target traced", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 1
	})

	full := fullListener(t)
	send(t, target.URL, []request{{"GET", "/dial?addr=" + full, 502}}) // the target's 5s dial timeout

	peer := map[string]string{"process": name, "direction": "outbound", "peer": full}
	var retransmits, failures float64
	waitFor(t, "retransmissions and one failed connection counted", func() bool {
		m := metrics()
		retransmits = value(m, "ebpf_tcp_retransmits_total", peer)
		failures = value(m, "ebpf_tcp_connection_failures_total", map[string]string{"process": name, "peer": full})
		return retransmits >= 1 && failures == 1
	}, func() string {
		return fmt.Sprintf("retransmits %v (want at least 1), failures %v (want 1)", retransmits, failures)
	})
	t.Logf("a dial to %s whose SYNs were dropped: %v retransmissions, %v failed connection", full, retransmits, failures)
}

// fullListener returns the address of a TCP listener whose accept queue
// is full: listen(2) with a backlog of 0 and one connection never
// accepted, so that the kernel drops every further SYN.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
	filler, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("fill the accept queue: %v", err)
	}
	t.Cleanup(func() { filler.Close() })
	return addr
}
