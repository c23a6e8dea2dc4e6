package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

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
		// Labs 6 and 8 early: lab 6's evidence is the learner's health
		// checks, lab 8's a burn-rate alert that fired and cleared, which
		// lab 2's failing payment provider would fire too; and lab 8's
		// one-hour window must not hold many good checkouts yet.
		{number: 6, act: actEBPF, within: 30 * time.Second},
		{number: 8, act: actBurnRate, within: time.Minute},
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
	st := startLabStack(t)
	scripted := map[int]bool{}
	for _, sc := range labScripts() {
		lab, ok := labs.Find(sc.number)
		if !ok {
			t.Fatalf("lab %d has a script but is not in labs.All", sc.number)
		}
		scripted[sc.number] = true
		t.Run(fmt.Sprintf("lab %d %s", lab.Number, lab.Title), func(t *testing.T) {
			provePass(t, st, lab, func() { sc.act(t, st) }, sc.within)
		})
	}
	for _, lab := range labs.All() {
		if !scripted[lab.Number] {
			t.Errorf("lab %d (%s) has no script in labScripts: its check is never proved", lab.Number, lab.Title)
		}
	}
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
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"},
		append(programs, "github.com/microshop/microshop/deploy/local/cmd/lab")...)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	jaegerBin, prometheusBin := observabilityTools(t)
	consulBin := servicetest.Tool(t, "consul", "CONSUL_BIN", "make .run/tools/consul")
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	base, broker := freePortRange(t, pspOffset+1), freePortRange(t, 1)
	jaegerPort, otlpPort := freePortRange(t, 2)+1, freePortRange(t, 2)+1
	prometheusPort, probePort, pgPort, consulPort := freePortRange(t, 1), freePortRange(t, 1), freePortRange(t, 1), freePortRange(t, 4)
	p := strconv.Itoa
	l := startLauncher(t, stackEnv, filepath.Join(bin, "launcher"),
		"-mode", "full", "-dir", filepath.Join(dir, "run"), "-bin", bin, "-restart",
		"-port-base", p(base), "-broker-port", p(broker), "-postgres-port", p(pgPort),
		"-consul", consulBin, "-consul-port", p(consulPort),
		"-jaeger", jaegerBin, "-jaeger-port", p(jaegerPort), "-otlp-port", p(otlpPort),
		"-prometheus", prometheusBin, "-prometheus-port", p(prometheusPort),
		"-observability", filepath.Join(root, "observability"),
		"-probe", filepath.Join(bin, "probe"), "-probe-port", p(probePort))
	l.waitForLine(t, "all processes ready", 3*time.Minute)
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
	for name, offset := range serviceOffsets {
		st.services[name] = url(base + offset)
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
