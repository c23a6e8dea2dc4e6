package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

// TestMissingCapability runs the probe without privileges, and asks it
// with -check whether it could load (the launcher does): both must exit
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
	for _, args := range [][]string{nil, {"-check"}} {
		cmd := exec.Command(exe, args...)
		if os.Geteuid() == 0 { // as nobody: a user without capabilities
			setpriv, err := exec.LookPath("setpriv")
			if err != nil {
				t.Skipf("running as root and no setpriv to drop privileges: %v", err)
			}
			cmd = exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", exe}, args...)...)
		}
		cmd.Env = []string{"PROBE_METRICS_ADDR=" + servicetest.FreeAddr(t)}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Fatalf("probe %v without privileges: %v, want exit status 2; stderr:\n%s", args, err, stderr.String())
		}
		want := "probe: cannot load: missing capability CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN): run the probe as root or grant them\n"
		if got := stderr.String(); got != want {
			t.Errorf("probe %v: stderr = %q, want %q", args, got, want)
		}
	}
	if os.Geteuid() == 0 { // and as root it can
		if out, err := exec.Command(exe, "-check").CombinedOutput(); err != nil {
			t.Errorf("probe -check as root: %v\n%s", err, out)
		}
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

// TestAgreementServices attaches the probe to two of the shop's real
// services, the gateway (Gin on net/http) and inventory (a saga service of
// pkg/sagaservice, on SQLite and the Kafka-protocol broker), the gateway
// calling inventory and order, which is down. Per route pattern and status
// the probe's counts must be the statuses the client received from the
// gateway; per route and status class they must equal each service's own
// http_server_request_duration_seconds (the SDK side), also across a
// restart of inventory, whose new process the probe picks up again. The
// gateway's refused calls to order are failed connections.
func TestAgreementServices(t *testing.T) {
	requireProbe(t)
	dir := t.TempDir()
	suffix := fmt.Sprintf("-agreement-%d", os.Getpid()) // names no other process has: the probe watches by name
	gatewayName, inventoryName := "gateway"+suffix, "inventory"+suffix
	gatewayExe := buildProgram(t, dir, gatewayName, "github.com/microshop/microshop/services/gateway/cmd/gateway")
	inventoryExe := buildProgram(t, dir, "inventory"+suffix, "github.com/microshop/microshop/services/inventory/cmd/inventory")
	brokerExe := buildProgram(t, dir, "broker", "github.com/microshop/microshop/deploy/local/cmd/broker")

	broker, gatewayAddr, inventoryAddr, down := servicetest.FreeAddr(t), servicetest.FreeAddr(t), servicetest.FreeAddr(t), servicetest.FreeAddr(t)
	startProgram(t, brokerExe, nil, "", "-addr", broker, "-data-dir", "")
	waitFor(t, "the broker listening", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	inventoryEnv := []string{
		"INVENTORY_HTTP_ADDR=" + inventoryAddr,
		"INVENTORY_LOG_LEVEL=error",
		"INVENTORY_DATABASE_URL=sqlite:" + filepath.Join(dir, "inventory.db"),
		"INVENTORY_KAFKA_BROKERS=" + broker,
	}
	inventory := startProgram(t, inventoryExe, inventoryEnv, "http://"+inventoryAddr+"/readyz")
	startProgram(t, gatewayExe, []string{
		"GATEWAY_HTTP_ADDR=" + gatewayAddr,
		"GATEWAY_LOG_LEVEL=error",
		"GATEWAY_INVENTORY_URL=http://" + inventoryAddr,
		"GATEWAY_ORDER_URL=http://" + down,
		"GATEWAY_PSP_URL=http://" + down,
	}, "http://"+gatewayAddr+"/healthz")

	env := map[string]string{
		"PROBE_METRICS_ADDR":  servicetest.FreeAddr(t),
		"PROBE_PROCESSES":     gatewayName + "," + inventoryName,
		"PROBE_SCAN_INTERVAL": "100ms",
		// /readyz among them: startProgram's readiness polls of the
		// restarted inventory below may come after the probe has picked
		// it up, and would otherwise be counted as "unmatched".
		"PROBE_ROUTES": strings.Join([]string{"GET /healthz", "GET /readyz", "GET /metrics", "GET /api/v1/openapi.json",
			"POST /api/v1/login", "GET /api/v1/products/{sku}", "GET /api/v1/orders/{id}", "GET /v1/products/{sku}"}, ","),
	}
	svc := servicetest.Start(t, run, env, "PROBE_METRICS_ADDR")
	metrics := func() map[string]*dto.MetricFamily { return scrape(t, svc.URL) }
	waitFor(t, "both services' HTTP servers traced", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 2
	})

	// What the client received from the gateway, by route pattern.
	gateway := "http://" + gatewayAddr
	received := make(map[route]int)
	do := func(method, path, pattern, body string, header ...string) *http.Response {
		t.Helper()
		req, err := http.NewRequest(method, gateway+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		received[route{method, pattern, resp.StatusCode}]++
		return resp
	}
	get := func(path, pattern string) { do("GET", path, pattern, "").Body.Close() }
	for range 20 {
		get("/healthz", "/healthz")
	}
	for range 5 {
		get("/api/v1/openapi.json", "/api/v1/openapi.json")
	}
	for range 12 { // inventory answers: 200
		get("/api/v1/products/BAG-TOTE-CANVAS", "/api/v1/products/{sku}")
	}
	for i := range 6 { // inventory answers: 404
		get(fmt.Sprintf("/api/v1/products/NO-SUCH-%d", i), "/api/v1/products/{sku}")
	}
	for range 4 {
		get("/api/v1/no-such-route", "unmatched")
	}
	login := do("POST", "/api/v1/login", "/api/v1/login", `{"username":"alice","password":"alice-demo"}`)
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(login.Body).Decode(&token); err != nil || token.AccessToken == "" {
		t.Fatalf("login: status %d, %v", login.StatusCode, err)
	}
	login.Body.Close()
	for i := range 3 { // order is down: the gateway's calls are refused
		do("GET", fmt.Sprintf("/api/v1/orders/ord-%d", i), "/api/v1/orders/{id}", "", "Authorization", "Bearer "+token.AccessToken).Body.Close()
	}

	var got map[route]int
	waitFor(t, "the probe's gateway counts to equal the statuses received", func() bool {
		got = requestCounts(metrics(), gatewayName)
		delete(got, route{"GET", "/metrics", 200}) // this test's scrapes of the gateway below
		return cmp.Equal(received, got)
	}, func() string { return cmp.Diff(received, got) })
	t.Logf("probe and client agree on the gateway: %v", got)
	if n := received[route{"GET", "/api/v1/products/{sku}", 200}]; n != 12 {
		t.Fatalf("the gateway answered %d GET /api/v1/products/BAG-TOTE-CANVAS with 200, want 12 (is the SKU in the demo catalog?): %v", n, received)
	}

	// The SDK side: each service's own RED histogram, per route template
	// and status class; the probe's counts, classed alike, must equal it.
	// The SDK leaves out /healthz, /readyz and /metrics (probes and scrapes
	// would drown the dashboards).
	agree := func(name, base string, before map[route]int) (sdk map[route]int) {
		t.Helper()
		var probe map[route]int
		waitFor(t, name+": the probe's counts to equal the SDK's", func() bool {
			sdk = sdkCounts(t, base)
			for r, n := range before { // the SDK's counters of the process before a restart
				sdk[r] += n
			}
			probe = make(map[route]int)
			for r, n := range requestCounts(metrics(), name) {
				if r.Path != "/healthz" && r.Path != "/readyz" && r.Path != "/metrics" {
					probe[route{r.Method, r.Path, r.Status / 100}] += n
				}
			}
			return cmp.Equal(probe, sdk)
		}, func() string {
			return "by route and status class (-probe +sdk):\n" + cmp.Diff(probe, sdk)
		})
		return sdk
	}
	t.Logf("the probe agrees with the gateway's SDK metrics: %v", agree(gatewayName, gateway, nil))
	inventoryBefore := agree(inventoryName, "http://"+inventoryAddr, nil)
	t.Logf("the probe agrees with inventory's SDK metrics: %v", inventoryBefore)
	if n := inventoryBefore[route{"GET", "/v1/products/{sku}", 2}]; n != 12 {
		t.Errorf("inventory's SDK counted %d GET /v1/products/{sku} 2xx, want 12", n)
	}

	// Inventory restarted, as the chaos harness does: the probe drops the
	// old process, picks the new one up under the same name, and its
	// counts go on from where they were while the new process's SDK
	// counters start from zero.
	inventory.stop()
	waitFor(t, "the stopped inventory dropped", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 1
	})
	startProgram(t, inventoryExe, inventoryEnv, "http://"+inventoryAddr+"/readyz")
	waitFor(t, "the restarted inventory traced", func() bool {
		return value(metrics(), "ebpf_probe_targets", map[string]string{"http": "true"}) == 2
	})
	// A readiness poll the probe certainly sees, as the launcher's and a
	// kubelet's are: it is labelled /readyz, which neither side compares.
	if resp, err := http.Get("http://" + inventoryAddr + "/readyz"); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	for range 9 {
		get("/api/v1/products/BAG-TOTE-CANVAS", "/api/v1/products/{sku}")
	}
	if n := received[route{"GET", "/api/v1/products/{sku}", 200}]; n != 12+9 {
		t.Fatalf("after inventory's restart the gateway answered %d GET /api/v1/products/BAG-TOTE-CANVAS with 200 in all, want 21", n)
	}
	t.Logf("after inventory's restart the probe agrees with its SDK metrics before and after: %v",
		agree(inventoryName, "http://"+inventoryAddr, inventoryBefore))

	refused := map[string]string{"process": gatewayName, "peer": down}
	var failures float64
	waitFor(t, "the gateway's refused calls to order counted", func() bool {
		failures = value(metrics(), "ebpf_tcp_connection_failures_total", refused)
		return failures >= 1
	})
	t.Logf("the gateway's failed connections to %s (order, down): %v", down, failures)
	if lost := value(metrics(), "ebpf_probe_events_lost_total", map[string]string{"source": "http"}); lost != 0 {
		t.Errorf("%v HTTP events lost", lost)
	}
}

// sdkCounts are the counts of a service's own
// http_server_request_duration_seconds per method, route template (Gin's
// :param written {param}, as in ServeMux patterns) and status class (2 for
// 2xx).
func sdkCounts(t *testing.T, base string) map[route]int {
	t.Helper()
	param := regexp.MustCompile(`:([a-z]+)`)
	counts := make(map[route]int)
	for _, metric := range scrape(t, base)["http_server_request_duration_seconds"].GetMetric() {
		l := labels(metric)
		var class int
		fmt.Sscanf(l["http_response_status_class"], "%dxx", &class)
		counts[route{l["http_request_method"], param.ReplaceAllString(l["http_route"], "{$1}"), class}] += int(metric.GetHistogram().GetSampleCount())
	}
	return counts
}

// buildProgram builds the Go program pkg as the executable name in dir.
func buildProgram(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	exe := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", exe, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return exe
}

// program is a process a test started.
type program struct{ cmd *exec.Cmd }

// stop kills the program and waits for it; calling it again does nothing.
func (p *program) stop() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// startProgram runs exe with args and env until the test ends, and waits
// until ready answers 200 (unless ready is empty).
func startProgram(t *testing.T, exe string, env []string, ready string, args ...string) *program {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &program{cmd}
	t.Cleanup(p.stop)
	if ready != "" {
		waitFor(t, filepath.Base(exe)+" ready", func() bool {
			resp, err := http.Get(ready)
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
	}
	return p
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
