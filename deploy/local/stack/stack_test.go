package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
	"github.com/microshop/microshop/deploy/local/internal/invariants/invariantstest"
	"github.com/microshop/microshop/deploy/local/internal/labs"
	"github.com/microshop/microshop/pkg/poll"
)

// project is the compose project name of the test's stack, apart from a
// visitor's.
const project = "microshop-test"

// TestComposeOverride checks that CI's override keeps every rule of the
// stack and substitutes nothing but images, the broker for Kafka, and
// Grafana's absence.
func TestComposeOverride(t *testing.T) {
	p := loadCompose(t, "docker-compose.yaml", "deploy/compose/local.yaml")
	checkRules(t, p, "grafana")
	for name, s := range p.Services {
		if !strings.HasPrefix(s.Image, "microshop-local/") {
			t.Errorf("%s: image %q is not a local stand-in", name, s.Image)
		}
	}
	// The broker is our program: run under its own name, as the others.
	if got, want := p.Services["kafka"].HealthCheck.Test, []string{"CMD", "/usr/local/bin/broker", "healthcheck"}; !slices.Equal([]string(got), want) {
		t.Errorf("kafka: healthcheck %q, want %q, the broker's own mode", got, want)
	}
	if _, ok := p.DisabledServices["grafana"]; !ok {
		t.Error("grafana is started, but CI has no Grafana image")
	}
}

// TestComposeStack starts docker-compose.yaml with CI's stand-in images
// (deploy/compose/local.yaml), waits for every healthcheck, places
// checkouts through the containerised gateway and checks I1–I5 in the
// databases, after cutting the stack apart on purpose: order cut off the
// broker for 30 s under load, a payment replica killed, inventory's
// replicas restarted one at a time with no request failing. make
// compose-test runs it, after building the images (make compose-images).
func TestComposeStack(t *testing.T) {
	if os.Getenv("MICROSHOP_COMPOSE_TEST") == "" {
		t.Skip("starts the compose stack: make compose-test runs it (MICROSHOP_COMPOSE_TEST=1), with the images of make compose-images")
	}
	started := time.Now()
	st := up(t)
	t.Logf("stack healthy %v after docker-compose up", time.Since(started).Round(time.Millisecond))
	ctx := t.Context()

	client := invariants.NewClient(st.gateway, 10*time.Second)
	d, closeDBs, err := invariants.OpenDatabases(ctx, st.databases)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDBs()
	const perPhase = 60
	shop, err := invariants.Prepare(ctx, client, d, 4*perPhase+10)
	if err != nil {
		t.Fatal(err)
	}
	truth := invariants.NewGroundTruth(shop.Catalog)
	if err := invariants.WarmUp(ctx, client, d, shop, 1, 2*time.Minute, truth); err != nil {
		t.Fatal(err)
	}
	load := func(seed uint64) invariants.Load {
		return invariants.Load{Orders: perPhase, Concurrency: 4, Pace: 100 * time.Millisecond, Seed: seed}
	}
	// drive places l's orders while fault runs, records them, and returns
	// the result.
	drive := func(name string, l invariants.Load, fault func()) *invariants.DriveResult {
		t.Helper()
		begin := time.Now()
		done := make(chan *invariants.DriveResult, 1)
		go func() { done <- invariants.Drive(ctx, client, shop, l) }()
		fault()
		res := <-done
		truth.Record(res)
		t.Logf("%s: %d orders accepted in %v, %d retries, %d never accepted",
			name, len(res.IDs), time.Since(begin).Round(time.Millisecond), res.Retries, len(res.Failed))
		for _, err := range res.Failed {
			t.Errorf("%s: %v", name, err)
		}
		return res
	}

	drive("checkouts", load(2), func() {})

	// Lab 9 (labs/09-partition) is this partition: its check must fail
	// before it and pass once it has healed and the saga settled.
	partitionLab := st.lab(t, 9)
	if v := partitionLab.check(t); len(v.Missing) == 0 {
		t.Errorf("lab 9's check passed before any partition: seen %q", v.Seen)
	}
	drive("order cut off the broker for 30 s", load(3), func() {
		orders := st.containers(t, "order")
		for _, c := range orders {
			st.docker(t, "network", "disconnect", project+"_kafka", c)
		}
		time.Sleep(30 * time.Second) // the partition's length, not a synchronisation
		for _, c := range orders {
			st.docker(t, "network", "connect", "--alias", "order", project+"_kafka", c)
		}
	})
	partitionLab.waitPassed(t, 2*time.Minute)

	drive("a payment replica killed", load(4), func() {
		time.Sleep(time.Second)
		st.docker(t, "kill", st.containers(t, "payment")[0])
	})
	st.compose(t, "up", "-d", "--no-build", "--no-recreate", "payment") // back to two replicas
	st.waitHealthy(t)

	rolling := drive("inventory's replicas restarted one at a time", load(5), func() {
		for _, c := range st.containers(t, "inventory") {
			st.docker(t, "restart", "-t", "15", c)
			st.waitHealthy(t)
		}
	})
	if rolling.Retries != 0 {
		t.Errorf("the rolling restart made clients retry %d times, want no request failed", rolling.Retries)
	}

	st.verify(t, d, truth)
	t.Logf("make compose-test's stack: %v from docker-compose up to the verdict", time.Since(started).Round(time.Second))
}

// stack is the compose project the test started, as the host reaches it.
type stack struct {
	root       string
	gateway    string            // the gateway's base URL
	psp        string            // the PSP simulator's base URL
	prometheus string            // Prometheus's base URL
	broker     string            // the broker's host:port
	databases  map[string]string // by service
}

// up starts the project and waits until every container is healthy; the
// project is taken down, volumes too, when the test ends (its containers'
// logs printed first if the test failed).
func up(t *testing.T) *stack {
	t.Helper()
	st := &stack{root: projectRoot(t)}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := st.run("docker-compose", st.composeArgs("logs", "--no-color", "--tail", "200")...)
			t.Logf("logs:\n%s", out)
		}
		if out, err := st.run("docker-compose", st.composeArgs("down", "-v", "-t", "5")...); err != nil {
			t.Errorf("docker-compose down: %v\n%s", err, out)
		}
	})
	st.compose(t, "down", "-v", "-t", "5") // what a killed run left
	st.compose(t, "up", "-d", "--no-build")
	st.waitHealthy(t)
	ip := func(service string) string { return st.ip(t, st.containers(t, service)[0], project+"_default") }
	st.gateway = "http://" + net.JoinHostPort(ip("gateway"), "8080")
	st.psp = "http://" + net.JoinHostPort(ip("psp"), "8090")
	st.prometheus = "http://" + net.JoinHostPort(ip("prometheus"), "9090")
	st.broker = net.JoinHostPort(st.ip(t, st.containers(t, "kafka")[0], project+"_kafka"), "9092")
	pg := net.JoinHostPort(ip("postgres"), "5432")
	st.databases = map[string]string{}
	for _, s := range []string{"order", "inventory", "payment"} {
		st.databases[s] = fmt.Sprintf("postgres://%s:%s@%s/%sdb?sslmode=disable", s, s, pg, s)
	}
	return st
}

// composeArgs are the arguments of a docker-compose command on the
// project with CI's override.
func (st *stack) composeArgs(args ...string) []string {
	return append([]string{"-p", project,
		"-f", filepath.Join(st.root, "docker-compose.yaml"), "-f", filepath.Join(st.root, "deploy/compose/local.yaml")}, args...)
}

// The published ports are moved off the well-known ones, which a native
// stack on the same machine may hold.
var publishedPorts = []string{
	"MICROSHOP_GATEWAY_PORT=18080", "MICROSHOP_CONSUL_PORT=18500", "MICROSHOP_JAEGER_PORT=26686",
	"MICROSHOP_PROMETHEUS_PORT=19090", "MICROSHOP_GRAFANA_PORT=13000",
}

func (st *stack) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = st.root
	cmd.Env = append(os.Environ(), publishedPorts...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

func (st *stack) compose(t *testing.T, args ...string) string {
	t.Helper()
	out, err := st.run("docker-compose", st.composeArgs(args...)...)
	if err != nil {
		t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (st *stack) docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := st.run("docker", args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// containers returns the ids of a service's running containers.
func (st *stack) containers(t *testing.T, service string) []string {
	t.Helper()
	ids := strings.Fields(st.docker(t, "ps", "-q", "--filter", "label=com.docker.compose.project="+project,
		"--filter", "label=com.docker.compose.service="+service))
	if len(ids) == 0 {
		t.Fatalf("no running container of %s", service)
	}
	slices.Sort(ids)
	return ids
}

// ip returns a container's address on a network of the project.
func (st *stack) ip(t *testing.T, container, network string) string {
	t.Helper()
	return st.docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, container)
}

// waitHealthy waits until every container of the project is running and
// healthy.
func (st *stack) waitHealthy(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	poll.UntilNil(ctx, t, "every container healthy", func() error {
		out, err := st.run("docker", "ps", "-a", "--filter", "label=com.docker.compose.project="+project,
			"--format", `{{.Label "com.docker.compose.service"}} {{.State}} {{.Status}}`)
		if err != nil {
			return fmt.Errorf("docker ps: %v: %s", err, out)
		}
		var waiting []string
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if !strings.Contains(line, "(healthy)") {
				waiting = append(waiting, line)
			}
		}
		if len(waiting) > 0 {
			return fmt.Errorf("not healthy: %s", strings.Join(waiting, "; "))
		}
		return nil
	})
}

// verify waits until nothing is in flight, stops the services so that
// nothing changes while it reads, and checks I1–I5 against truth.
func (st *stack) verify(t *testing.T, d invariants.Databases, truth invariants.GroundTruth) {
	t.Helper()
	// The broker advertises its compose name, which the host does not
	// resolve: dial its container instead.
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	kc := &kafka.Client{Addr: kafka.TCP(st.broker), Timeout: 10 * time.Second, Transport: &kafka.Transport{
		Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, st.broker)
		},
	}}
	invariantstest.Settle(t, invariants.Sources{Databases: d, PSP: st.psp, Kafka: kc}, truth, func() {
		st.compose(t, "stop", "-t", "10", "gateway", "order", "inventory", "payment")
	})
}

// stackLab is a lab of labs/ whose check reads the compose stack.
type stackLab struct {
	labs.Lab
	stack labs.Stack
}

// lab returns lab n with the stack's addresses, as make lab-N-check gives
// them for a compose stack.
func (st *stack) lab(t *testing.T, n int) stackLab {
	t.Helper()
	for _, l := range labs.All() {
		if l.Number == n {
			return stackLab{Lab: l, stack: labs.Stack{Gateway: st.gateway, PSP: st.psp, Prometheus: st.prometheus, Broker: st.broker, Databases: st.databases}}
		}
	}
	t.Fatalf("no lab %d in labs.All()", n)
	return stackLab{}
}

// check runs the lab's check once; an error fails the test.
func (l stackLab) check(t *testing.T) labs.Verdict {
	t.Helper()
	v, err := l.Check(t.Context(), l.stack)
	if err != nil {
		t.Fatalf("lab %d: %v", l.Number, err)
	}
	t.Logf("lab %d: seen %q; missing %q", l.Number, v.Seen, v.Missing)
	return v
}

// waitPassed waits up to limit for the lab's check to pass: the stack
// settling, and Prometheus scraping it. If it does not, the last verdict
// and what Prometheus holds of outboxes and sagas are logged.
func (l stackLab) waitPassed(t *testing.T, limit time.Duration) {
	t.Helper()
	start := time.Now()
	var v labs.Verdict
	var err error
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		v, err = l.Check(ctx, l.stack)
		cancel()
		if err == nil && len(v.Missing) == 0 {
			t.Logf("lab %d passed %v after its actions:\n%s", l.Number, time.Since(start).Round(time.Second), v)
			return
		}
		if time.Since(start) > limit {
			break
		}
		time.Sleep(5 * time.Second) // a scrape of Prometheus
	}
	for _, q := range []string{"max by (job) (max_over_time(outbox_oldest_pending_age_seconds[15m]))",
		"sum by (job) (increase(outbox_publish_failures_total[15m]))", "max by (job) (outbox_pending_messages)",
		"max by (job, status) (saga_instances)", "sum by (status) (increase(saga_finished_total[15m]))"} {
		resp, qerr := http.Get(l.stack.Prometheus + "/api/v1/query?query=" + url.QueryEscape(q))
		if qerr != nil {
			t.Logf("%s: %v", q, qerr)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%s: %s", q, body)
	}
	t.Fatalf("lab %d's check did not pass within %v of its actions: %v\n%s", l.Number, limit, err, v)
}
