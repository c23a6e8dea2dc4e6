package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/deploy/local/internal/labs"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// labStack is the shop of TestLabs, started as make run-full starts it —
// PostgreSQL, Consul, Jaeger, Prometheus, the eBPF probe when it can load,
// the services restarted when they die — on free ports.
type labStack struct {
	labs.Stack
	l   *launcher
	bin string // the built programs, lab among them
	// services are the base URLs of the shop's processes, by name.
	services map[string]string
}

// labScript is a lab's part in TestLabs: act does what the lab's README
// tells the learner to do, on the running stack; then the lab's check must
// pass within within.
type labScript struct {
	number int
	act    func(t *testing.T, st *labStack)
	within time.Duration
}

// labScripts are the labs in the order TestLabs runs them on one stack.
// Each lab's check must fail before its action — on the stack as the
// earlier labs' actions left it, which proves a check sees its own lab's
// evidence, not any activity — and pass after it.
func labScripts() []labScript {
	return []labScript{
		{number: 1, act: actTrace, within: time.Minute},
		// Labs 6 and 8 before the others: lab 6's evidence is the
		// learner's health checks, lab 8's a burn-rate alert that fired and
		// cleared, which lab 2's failing payment provider could fire too;
		// and lab 8's one-hour window must not hold many good checkouts.
		{number: 6, act: actEBPF, within: 2 * time.Minute},
		{number: 8, act: actBurnRate, within: time.Minute},
		{number: 7, act: actLiveRules, within: 30 * time.Second},
		{number: 2, act: actBreaker, within: time.Minute},
		{number: 5, act: actDuplicates, within: time.Minute},
		{number: 4, act: actKillOrder, within: 2 * time.Minute},
		{number: 10, act: actNewService, within: time.Minute},
		// Lab 3 last: its overloads place thousands of checkouts.
		{number: 3, act: actOverload, within: time.Minute},
	}
}

// TestLabs runs the workshop's labs (labs/) on one stack started as make
// run-full starts it: for each lab, its check (make lab-N-check) must fail
// before the learner's action, scripted as its README says, and pass after
// it, both when called and as the lab command's exit status.
func TestLabs(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the full stack; run without -short")
	}
	// Registered before the stack's, so it runs after the stack's output
	// is logged: the end of a failed run's log, which is what a CI excerpt
	// shows, names the labs that failed and what their checks say now.
	var failed []string
	t.Cleanup(func() {
		if len(failed) > 0 {
			t.Logf("failed:\n%s", strings.Join(failed, "\n"))
		}
	})
	st := startLabStack(t)
	scripted := map[int]bool{}
	for _, sc := range labScripts() {
		lab, ok := labs.Find(sc.number)
		if !ok {
			t.Fatalf("lab %d has a script but is not in labs.All", sc.number)
		}
		scripted[sc.number] = true
		name := fmt.Sprintf("lab %d %s", lab.Number, lab.Title)
		ok = t.Run(name, func(t *testing.T) {
			provePass(t, st, lab, func() { sc.act(t, st) }, sc.within)
		})
		if !ok {
			v, err := lab.Check(t.Context(), st.Stack)
			now := v.String()
			if err != nil {
				now = err.Error()
			}
			failed = append(failed, name+"; its check now:\n"+now)
		}
	}
	for _, lab := range labs.All() {
		if !scripted[lab.Number] && provedElsewhere(lab.Number) == "" {
			t.Errorf("lab %d (%s) has no script in labScripts: its check is never proved", lab.Number, lab.Title)
		}
	}
}

// provedElsewhere names the test that proves lab n's check in both
// directions on the stack it needs, when that is not TestLabs; "" for the
// labs of TestLabs.
func provedElsewhere(n int) string {
	switch n {
	case 9:
		return "TestComposeStack (deploy/local/stack, make compose-test): the compose stack, cut apart"
	}
	return ""
}

// provePass proves lab's check in both directions on st: it must fail
// before act — the learner's action — and pass within the given time
// after it, and the lab command must exit 1, then 0.
func provePass(t *testing.T, st *labStack, lab labs.Lab, act func(), within time.Duration) {
	t.Helper()
	ctx := t.Context()
	before, err := lab.Check(ctx, st.Stack)
	if err != nil {
		t.Fatalf("lab %d's check before the action: %v", lab.Number, err)
	}
	if before.Passed() {
		t.Fatalf("lab %d's check passes before the learner's action:\n%s", lab.Number, before)
	}
	if code, out := st.labCommand(t, lab.Number); code != 1 {
		t.Errorf("lab check %d before the action exited %d, want 1:\n%s", lab.Number, code, out)
	}
	t.Logf("before the action:\n%s", before)

	started := time.Now()
	act()
	wait, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var after labs.Verdict
	poll.UntilNil(wait, t, fmt.Sprintf("lab %d's check to pass", lab.Number), func() error {
		if after, err = lab.Check(wait, st.Stack); err != nil {
			return err
		}
		if !after.Passed() {
			return errors.New("not passed:\n" + after.String())
		}
		return nil
	})
	t.Logf("after the action (passed %v after it began):\n%s", time.Since(started).Round(time.Millisecond), after)
	if code, out := st.labCommand(t, lab.Number); code != 0 {
		t.Errorf("lab check %d after the action exited %d, want 0:\n%s", lab.Number, code, out)
	}
}

// labCommand runs `lab check n` against st, as make lab-N-check does, and
// returns its exit code and output.
func (st *labStack) labCommand(t *testing.T, n int) (int, string) {
	t.Helper()
	s := st.Stack
	postgres := strings.TrimPrefix(strings.Split(s.Databases["order"], "/")[2], "postgres@")
	cmd := exec.CommandContext(t.Context(), filepath.Join(st.bin, "lab"),
		"-gateway", s.Gateway, "-psp", s.PSP, "-consul", s.Consul, "-jaeger", s.Jaeger, "-prometheus", s.Prometheus,
		"-probe", s.Probe, "-broker", s.Broker, "-postgres", postgres, "check", strconv.Itoa(n))
	out, err := cmd.CombinedOutput()
	if exit, ok := errors.AsType[*exec.ExitError](err); ok {
		return exit.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("lab check %d: %v\n%s", n, err, out)
	}
	return 0, string(out)
}

// startLabStack builds every program and starts the launcher as make
// run-full does, on free ports.
func startLabStack(t *testing.T) *labStack {
	t.Helper()
	dir := worldReadableTempDir(t) // the postgres user must reach the cluster under it
	bin := filepath.Join(dir, "bin")
	begun := time.Now()
	services, addedPrograms := addedServices(t)
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"},
		append(append(slices.Clone(programs), addedPrograms...), "github.com/microshop/microshop/deploy/local/cmd/lab")...)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	built := time.Now()
	jaegerBin, prometheusBin := observabilityTools(t)
	consulBin := servicetest.Tool(t, "consul", "CONSUL_BIN", "make .run/tools/consul")
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	base, broker := freePortRange(t, added.MaxOffset(services)+1), freePortRange(t, 1)
	jaegerPort, otlpPort := freePortRange(t, 2)+1, freePortRange(t, 2)+1
	prometheusPort, probePort, pgPort, consulPort := freePortRange(t, 1), freePortRange(t, 1), freePortRange(t, 1), freePortRange(t, 4)
	p := strconv.Itoa
	// No stackEnv: the services' defaults, as make run-full has them.
	l := startLauncher(t, nil, filepath.Join(bin, "launcher"),
		"-mode", "full", "-dir", filepath.Join(dir, "run"), "-bin", bin, "-restart",
		"-port-base", p(base), "-broker-port", p(broker), "-postgres-port", p(pgPort),
		"-consul", consulBin, "-consul-port", p(consulPort),
		"-jaeger", jaegerBin, "-jaeger-port", p(jaegerPort), "-otlp-port", p(otlpPort),
		"-prometheus", prometheusBin, "-prometheus-port", p(prometheusPort),
		"-observability", filepath.Join(root, "observability"),
		"-probe", filepath.Join(bin, "probe"), "-probe-port", p(probePort))
	l.waitForLine(t, "all processes ready", 3*time.Minute)
	t.Logf("programs built in %v, the stack ready %v later", built.Sub(begun).Round(time.Millisecond), time.Since(built).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("launcher output:\n%s", l.output())
		}
	})
	url := func(port int) string { return "http://127.0.0.1:" + p(port) }
	st := &labStack{l: l, bin: bin, services: map[string]string{}, Stack: labs.Stack{
		Gateway: url(base), PSP: url(base + pspOffset), Consul: url(consulPort), Jaeger: url(jaegerPort),
		Prometheus: url(prometheusPort), Broker: "127.0.0.1:" + p(broker),
		Databases: labs.Databases("127.0.0.1:" + p(pgPort)),
	}}
	if !strings.Contains(l.output(), "eBPF probe not started") {
		st.Probe = url(probePort)
	}
	for name, offset := range serviceOffsets(services) {
		st.services[name] = url(base + offset)
	}
	if st.Probe != "" {
		// Lab 6 compares every request the probe and the SDK counted since
		// the start, so no lab may send one before the probe traces every
		// service's HTTP server — which it does once it has read each
		// program's DWARF: seconds on a quiet machine, minutes on a crowded
		// one (a request sent earlier is counted by the SDK only, and the
		// views never agree again).
		wait, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
		defer cancel()
		start := time.Now()
		poll.Until(wait, t, "the probe tracing every service's HTTP server", func() bool {
			return metric(st.Probe, `ebpf_probe_targets{http="true"}`) >= float64(len(st.services))
		})
		t.Logf("the probe traced every service %v after the stack was ready", time.Since(start).Round(time.Millisecond))
	}
	return st
}

// actTrace is lab 1's action: the README's curl commands — log in as
// alice, place an order with the good card — then look the trace up.
func actTrace(t *testing.T, st *labStack) {
	c := apitest.NewClient(t, st.Gateway)
	token := c.Login(t, "alice", "alice-demo")
	resp := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": "lab-1-my-first-traced-order"},
		Body:   `{"card_number":"4242424242424242","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`})
	if resp.Status != 202 {
		t.Fatalf("place the order: %d %s", resp.Status, resp.Body)
	}
}

// labClient is a learner's curl: plain HTTP requests, safe from any
// goroutine, that say what they got.
type labClient struct {
	token string
}

// send does one request against base+path with the learner's token (if
// any) and JSON body (if any) and returns the status and body.
func (c labClient) send(ctx context.Context, method, url, key, body string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// login logs in as the demo user alice, as the README's first curl does.
func labLogin(t *testing.T, st *labStack) labClient {
	t.Helper()
	c := apitest.NewClient(t, st.Gateway)
	return labClient{token: c.Login(t, "alice", "alice-demo")}
}

// checkout places an order of one mug paid with card under key and
// returns its id ("" when the gateway did not answer 202).
func (c labClient) checkout(ctx context.Context, gateway, key, card string) (string, error) {
	status, body, err := c.send(ctx, "POST", gateway+"/api/v1/orders", key,
		`{"card_number":"`+card+`","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`)
	if err != nil {
		return "", err
	}
	if status != http.StatusAccepted {
		return "", fmt.Errorf("POST /api/v1/orders: %d %s", status, body)
	}
	var o struct{ ID string }
	if err := json.Unmarshal(body, &o); err != nil {
		return "", err
	}
	return o.ID, nil
}

// burst places n checkouts at once with card, keys prefix-1…n, as the
// README's loop with & does, and waits for their answers.
func (c labClient) burst(ctx context.Context, gateway, prefix, card string, n int) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, _ = c.checkout(ctx, gateway, prefix+"-"+strconv.Itoa(i+1), card) })
	}
	wg.Wait()
}

// actLiveRules is lab 7's action: a route limit PUT in Consul KV, the
// burst of product lists that meets it, a broken document that is
// rejected, and the key deleted again.
func actLiveRules(t *testing.T, st *labStack) {
	ctx := t.Context()
	var c labClient
	kv := st.Consul + "/v1/kv/microshop/gateway/limit"
	put := func(doc string) {
		t.Helper()
		if status, body, err := c.send(ctx, "PUT", kv, "", doc); err != nil || status != http.StatusOK {
			t.Fatalf("PUT %s: %d %s %v", kv, status, body, err)
		}
	}
	// Step 1: one request per second on the product list, two at once.
	put(`{"routes": {"GET /api/v1/products": {"priority": "low", "rate": 1, "burst": 2}}}`)
	// Step 2: ten product lists at once, again until the rule is in force
	// (the watch takes a round trip): some answer 429.
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	poll.Until(wait, t, "a 429 from the product list", func() bool {
		refused := 0
		for range 10 {
			if status, _, err := c.send(ctx, "GET", st.Gateway+"/api/v1/products?limit=3", "", ""); err == nil && status == http.StatusTooManyRequests {
				refused++
			}
		}
		return refused > 0
	})
	// Step 3: a broken document (a negative rate) is rejected — and, as the
	// learner finds the warning first, seen rejected before step 4: a
	// DELETE right after the PUT can reach the gateway's blocking query
	// first, and the broken document is then never read (a CI run lost it
	// that way).
	put(`{"routes": {"GET /api/v1/products": {"priority": "low", "rate": -1, "burst": 2}}}`)
	rejected, cancelRejected := context.WithTimeout(ctx, 30*time.Second)
	defer cancelRejected()
	poll.Until(rejected, t, "the gateway rejecting the broken document", func() bool {
		return metric(st.Gateway, `liverules_rejected_total{key="microshop/gateway/limit"}`) > 0
	})
	// Step 4: the key deleted, the defaults back.
	if status, body, err := c.send(ctx, "DELETE", kv, "", ""); err != nil || status != http.StatusOK {
		t.Fatalf("DELETE %s: %d %s %v", kv, status, body, err)
	}
}

// pspFaults sets the payment provider's faults through its admin API, as
// the README's curl does.
func pspFaults(t *testing.T, st *labStack, latency string, failureRate float64) {
	t.Helper()
	doc := fmt.Sprintf(`{"latency":%q,"failure_rate":%g}`, latency, failureRate)
	if status, body, err := (labClient{}).send(t.Context(), "PUT", st.PSP+"/v1/admin/faults", "", doc); err != nil || status != http.StatusOK {
		t.Fatalf("PUT faults %s: %d %s %v", doc, status, body, err)
	}
}

// breakerState reads payment's breaker_state of the payment provider, as
// the README's curl of payment's /metrics does.
func breakerState(st *labStack) float64 {
	return metric(st.services["payment"], `breaker_state{upstream="psp"}`)
}

// actBreaker is lab 2's action: latency at the payment provider and a
// burst of checkouts until the breaker opens; then failures, with a
// checkout a second; then the faults removed, with a checkout a second
// until the breaker is closed and a checkout confirmed.
func actBreaker(t *testing.T, st *labStack) {
	ctx := t.Context()
	c := labLogin(t, st)
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		wait, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		poll.Until(wait, t, what, cond)
	}
	// Steps 1 and 2: 1.5 s of latency, 20 checkouts at once.
	pspFaults(t, st, "1500ms", 0)
	c.burst(ctx, st.Gateway, "lab-2-slow", apitest.GoodCard, 20)
	waitFor("the breaker open (breaker_state 2)", func() bool { return breakerState(st) == 2 })
	// Step 3: no latency, every charge failing; a checkout a second.
	pspFaults(t, st, "0s", 1)
	i := 0
	everySecond := func(prefix string, until func() bool) {
		t.Helper()
		waitFor(prefix+": "+"the breaker's state", func() bool {
			i++
			_, _ = c.checkout(ctx, st.Gateway, prefix+"-"+strconv.Itoa(i), apitest.GoodCard)
			time.Sleep(time.Second) // the README's `sleep 1`: the pace of the learner's loop, not a synchronisation
			return until()
		})
	}
	failed := func() bool {
		return metric(st.PSP, `http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_class="5xx",http_route="/v1/charges"}`) > 0
	}
	everySecond("lab-2-failing", failed)
	// Step 5: faults removed; a checkout a second until the breaker is
	// closed again and a later checkout CONFIRMED.
	pspFaults(t, st, "0s", 0)
	everySecond("lab-2-healed", func() bool {
		return breakerState(st) == 0 && metric(st.services["payment"], `breaker_transitions_total{to="closed",upstream="psp"}`) > 0
	})
	if _, err := c.checkout(ctx, st.Gateway, "lab-2-after", apitest.GoodCard); err != nil {
		t.Fatal(err)
	}
}

// actDuplicates is lab 5's action: a CONFIRMED order's saga commands
// delivered again with make lab-redeliver ORDER=<id>.
func actDuplicates(t *testing.T, st *labStack) {
	ctx := t.Context()
	c := labLogin(t, st)
	id, err := c.checkout(ctx, st.Gateway, "lab-5-order", apitest.GoodCard)
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	poll.Until(wait, t, "order "+id+" CONFIRMED", func() bool {
		_, body, err := c.send(ctx, "GET", st.Gateway+"/api/v1/orders/"+id, "", "")
		var o struct{ Status string }
		return err == nil && json.Unmarshal(body, &o) == nil && o.Status == "CONFIRMED"
	})
	out, err := exec.CommandContext(ctx, filepath.Join(st.bin, "lab"), "-broker", st.Broker, "redeliver", id).CombinedOutput()
	if err != nil {
		t.Fatalf("lab redeliver %s: %v\n%s", id, err, out)
	}
	t.Logf("lab redeliver: %s", out)
}

// actKillOrder is lab 4's action: checkouts in a loop in the background,
// every tenth with the hanging card; order killed with kill -9 in the
// middle of them; the loop goes on until order is back, then ends.
func actKillOrder(t *testing.T, st *labStack) {
	ctx := t.Context()
	c := labLogin(t, st)
	loop, stop := context.WithCancel(ctx)
	var placed atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 1; loop.Err() == nil; i++ {
			card := apitest.GoodCard
			if i%10 == 0 {
				card = hangingCard
			}
			go func() {
				if _, err := c.checkout(loop, st.Gateway, "lab-4-"+strconv.Itoa(i), card); err == nil {
					placed.Add(1)
				}
			}()
			time.Sleep(50 * time.Millisecond) // the README loop's pace: twenty checkouts a second
		}
	})
	defer func() { stop(); wg.Wait() }()
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The README: kill it about three seconds into the loop.
	poll.Until(wait, t, "60 checkouts placed", func() bool { return placed.Load() >= 60 })
	pid := st.l.startedPIDs()["order"]
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 order (pid %d): %v", pid, err)
	}
	st.l.waitForLine(t, "order ready again", time.Minute)
	before := placed.Load()
	poll.Until(wait, t, "checkouts placed after the restart", func() bool { return placed.Load() >= before+20 })
}
