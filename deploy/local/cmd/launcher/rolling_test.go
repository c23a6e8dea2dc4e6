package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
	"github.com/microshop/microshop/deploy/local/internal/invariants/invariantstest"
	"github.com/microshop/microshop/deploy/local/internal/supervise"
	"github.com/microshop/microshop/pkg/discovery/consultest"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/pgcluster"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/services/psp/simulator"
)

// TestRollingRestart runs the shop with two replicas each of order and
// inventory, registered in a real Consul, puts steady load on the gateway
// (product and order reads, checkouts), and restarts every replica in turn
// with SIGTERM: not one request may fail — each stopping replica leaves
// Consul before it drains, and the gateway retries what still reached it
// on the other replica. Then it kills one replica with SIGKILL under the
// same load and reports how many requests failed and how long the gateway
// kept the dead replica among its instances; every checkout placed must
// still reach CONFIRMED or CANCELLED, and the saga's invariants I1–I5 hold
// against the ground truth of what the load asked for. Figures are logged,
// not asserted, except the zero of the rolling restart.
func TestRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the stack with replicas; run without -short")
	}
	st := startStack(t, stackOptions{replicas: 2})
	ctx := t.Context()
	orders, inventory, waitPassing := st.replicas["order"], st.replicas["inventory"], st.waitPassing
	out := st.out

	shop := newShopper(t, st.gateway)
	loadCtx, stopLoad := context.WithCancel(ctx)
	var workers sync.WaitGroup
	for w := range 4 {
		workers.Go(func() { shop.run(loadCtx, w) })
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopLoad()
			workers.Wait()
			stopped = true
		}
	}
	defer stop()
	// Let the load settle in before the first restart, then one replica
	// after the other: stop, start, and wait until Consul passes it again.
	shop.waitRequests(ctx, t, 100)
	warm := shop.phase()
	t.Logf("before the restarts: %d requests (%d checkouts), %d failed %v", warm.sent, warm.checkouts, warm.failed, warm.failures)
	rollingStart := time.Now()
	for _, p := range []*supervise.Process{orders[0], orders[1], inventory[0], inventory[1]} {
		service := strings.Split(p.Name, "-")[0]
		if err := p.Stop(out, 20*time.Second); err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit 0", p.Name, err)
		}
		if err := p.Start(out); err != nil {
			t.Fatal(err)
		}
		if err := p.WaitReady(ctx, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
		waitPassing(t, service, 2)
		// As a deployment waits for its load balancer: the next replica
		// stops only once the gateway itself holds the restarted one (its
		// resolver follows Consul a few milliseconds behind; a replica
		// stopped before that could leave the gateway none to retry on).
		st.waitGatewaySees(t, service, 2)
	}
	rolling := shop.phase()
	t.Logf("rolling restart of 4 replicas (SIGTERM) in %v: %d requests (%d checkouts), %d failed %v",
		time.Since(rollingStart).Round(time.Millisecond), rolling.sent, rolling.checkouts, rolling.failed, rolling.failures)
	if rolling.failed != 0 {
		t.Errorf("%d of %d requests failed during the rolling restart, want 0: %v", rolling.failed, rolling.sent, rolling.failures)
	}

	// SIGKILL one order replica: until Consul's check of it fails and the
	// gateway's resolver drops it, requests to it are refused and retried.
	victim := orders[0]
	victimPort := strings.TrimPrefix(victim.URL, "http://127.0.0.1:")
	killedAt := time.Now()
	victim.Kill()
	gone := func() (time.Time, bool) {
		for _, l := range st.gatewayLines(`"healthy instances changed"`) {
			if l.at.After(killedAt) && strings.Contains(l.text, `"upstream":"order"`) && !strings.Contains(l.text, "-"+victimPort+"-") {
				return l.at, true
			}
		}
		return time.Time{}, false
	}
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	poll.Until(wait, t, "the gateway to drop the killed order replica", func() bool { _, ok := gone(); return ok })
	cancel()
	evictedAt, _ := gone()
	shop.waitRequests(ctx, t, 50) // the load goes on a little on one replica
	kill := shop.phase()
	t.Logf("SIGKILL of %s: the gateway dropped it after %v; %d requests (%d checkouts) from the kill on, %d failed %v",
		victim.Name, evictedAt.Sub(killedAt).Round(time.Millisecond), kill.sent, kill.checkouts, kill.failed, kill.failures)

	if err := victim.Start(out); err != nil {
		t.Fatal(err)
	}
	waitPassing(t, "order", 2)
	stop()

	// Every checkout placed settles, and I1–I5 hold.
	shop.answerAll(ctx, t)
	st.verify(t, shop.truth)
	if _, metrics, err := shop.do(ctx, "GET", "/metrics", "", ""); err == nil {
		for _, line := range strings.Split(string(metrics), "\n") {
			if strings.HasPrefix(line, "upstream_retries_total") {
				t.Logf("gateway: %s", line)
			}
		}
	}
}

// gatewayLine is one of the gateway's log lines and when it arrived.
type gatewayLine struct {
	at   time.Time
	text string
}

// stackOptions shape the stack of startStack.
type stackOptions struct {
	// replicas is how many replicas of order and of inventory run.
	replicas int
	// orderEnv and paymentEnv are added to those services' environments.
	orderEnv, paymentEnv []string
	// pspVia, if set, returns the PSP address payment dials instead of
	// the PSP's own (a proxy in front of it).
	pspVia func(psp string) string
	// gatewayVia, if set, returns the address the gateway dials for a
	// service's instance at addr (a proxy in front of it): the gateway then
	// takes its upstreams from GATEWAY_*_URL rather than from Consul, and
	// with one replica each.
	gatewayVia func(service, addr string) string
	// gatewayEnv is added to the gateway's environment.
	gatewayEnv []string
	// env is added to every service's environment (not the broker's).
	env []string
}

// stack is a shop started by startStack.
type stack struct {
	consul   *consultest.Consul
	out      *supervise.Output
	logs     *logtest.Buffer
	gateway  string // base URL
	psp      string // base URL of the PSP itself
	payment  string // base URL of payment
	replicas map[string][]*supervise.Process
	broker   string            // the broker's address
	dbURLs   map[string]string // each service's database

	mu    sync.Mutex
	lines []gatewayLine // the gateway's log lines
}

// startStack starts Consul, a PostgreSQL cluster and the shop — broker,
// PSP, inventory and order replicas, payment, gateway — every service
// registered in Consul, and waits until the replicas pass their checks.
// Everything stops when the test ends; the output is logged if it failed.
func startStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	st := &stack{consul: consultest.Start(t), logs: &logtest.Buffer{}, replicas: map[string][]*supervise.Process{}}
	dir := worldReadableTempDir(t) // the postgres user must reach the cluster under it
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", append([]string{"build", "-o", bin + "/"}, programs...)...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx := t.Context()
	st.out = supervise.NewOutput(st.logs, func(name, text string) {
		if name == "gateway" {
			st.mu.Lock()
			st.lines = append(st.lines, gatewayLine{at: time.Now(), text: text})
			st.mu.Unlock()
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("output:\n%s", st.logs.String())
		}
	})

	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir, Log: st.out.Writer("postgres")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop(context.Background()) })
	databases := map[string]string{}
	for _, name := range []string{"order", "inventory", "payment"} {
		if databases[name], err = cluster.CreateDatabase(ctx, name+"db"); err != nil {
			t.Fatal(err)
		}
	}
	st.dbURLs = databases

	port := freePortRange(t, 4+2*o.replicas)
	next := func() string { port++; return "127.0.0.1:" + strconv.Itoa(port-1) }
	broker, pspAddr, gatewayAddr, paymentAddr := next(), next(), next(), next()
	st.broker = broker
	st.gateway, st.psp, st.payment = "http://"+gatewayAddr, "http://"+pspAddr, "http://"+paymentAddr
	paymentPSP := pspAddr
	if o.pspVia != nil {
		paymentPSP = o.pspVia(pspAddr)
	}
	consulEnv := "CONSUL_HTTP_ADDR=" + st.consul.Addr
	// The drain may take its default 10 s: on a loaded CI machine a
	// request in flight at SIGTERM once took longer than 5 s, and the
	// replica exited 1 (drain deadline) though it failed no request.
	service := func(name, prefix, addr string, env ...string) *supervise.Process {
		return &supervise.Process{
			Name: name, Path: filepath.Join(bin, strings.Split(name, "-")[0]), URL: "http://" + addr,
			Env: append(append(env, o.env...), consulEnv, prefix+"_HTTP_ADDR="+addr, prefix+"_DATABASE_URL="+databases[strings.Split(name, "-")[0]],
				prefix+"_KAFKA_BROKERS="+broker, prefix+"_LOG_LEVEL=warn"),
		}
	}
	procs := []*supervise.Process{
		{Name: "broker", Path: filepath.Join(bin, "broker"), URL: "kafka://" + broker,
			Args: []string{"-addr", broker, "-data-dir", filepath.Join(dir, "kafka")}},
		{Name: "psp", Path: filepath.Join(bin, "psp"), URL: st.psp, Env: append([]string{"PSP_HTTP_ADDR=" + pspAddr, "PSP_LOG_LEVEL=warn"}, o.env...)},
	}
	for _, svc := range []struct {
		name, prefix string
		env          []string
	}{{"inventory", "INVENTORY", nil}, {"order", "ORDER", o.orderEnv}} {
		for i := range o.replicas {
			p := service(fmt.Sprintf("%s-%d", svc.name, i+1), svc.prefix, next(), svc.env...)
			st.replicas[svc.name] = append(st.replicas[svc.name], p)
			procs = append(procs, p)
		}
	}
	gatewayEnv := append(append([]string{"GATEWAY_HTTP_ADDR=" + gatewayAddr, "GATEWAY_PSP_URL=" + st.psp}, o.gatewayEnv...), o.env...)
	if o.gatewayVia == nil {
		gatewayEnv = append(gatewayEnv, consulEnv)
	} else {
		for _, svc := range []string{"inventory", "order"} {
			addr := strings.TrimPrefix(st.replicas[svc][0].URL, "http://")
			gatewayEnv = append(gatewayEnv, "GATEWAY_"+strings.ToUpper(svc)+"_URL=http://"+o.gatewayVia(svc, addr))
		}
	}
	procs = append(procs,
		service("payment", "PAYMENT", paymentAddr, append([]string{"PAYMENT_PSP_URL=http://" + paymentPSP}, o.paymentEnv...)...),
		&supervise.Process{Name: "gateway", Path: filepath.Join(bin, "gateway"), URL: st.gateway, Env: gatewayEnv},
	)
	started, err := supervise.StartAll(ctx, st.out, procs, 2*time.Minute)
	t.Cleanup(func() { _ = supervise.StopAll(st.out, started, 20*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	st.waitPassing(t, "order", o.replicas)
	st.waitPassing(t, "inventory", o.replicas)
	return st
}

// verify waits until nothing is in flight — every order final, every
// outbox sent, no consumer lagging — and then checks the saga's invariants
// I1–I5 against the ground truth the shopper kept, in the databases and
// the PSP's records (package invariants, as the chaos harness does). Stop
// the load and call shopper.answerAll first. It returns the checker's
// result for the figures.
func (st *stack) verify(t *testing.T, truth invariants.GroundTruth) *invariants.Result {
	t.Helper()
	ctx := t.Context()
	d, closeDBs, err := invariants.OpenDatabases(ctx, st.dbURLs)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDBs()
	kc := &kafka.Client{Addr: kafka.TCP(st.broker), Timeout: 10 * time.Second}
	return invariantstest.Settle(t, invariants.Sources{Databases: d, PSP: st.psp, Kafka: kc}, truth, nil)
}

// waitPassing waits until Consul has n passing instances of service.
func (st *stack) waitPassing(t *testing.T, service string, n int) {
	t.Helper()
	wait, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	client := st.consul.Client()
	poll.UntilNil(wait, t, fmt.Sprintf("%d passing %s instances", n, service), func() error {
		entries, _, err := client.Health().Service(service, "", true, nil)
		if err == nil && len(entries) != n {
			err = fmt.Errorf("%d passing", len(entries))
		}
		return err
	})
}

// waitGatewaySees waits until the gateway's latest view of upstream, as
// its "healthy instances changed" log lines tell, holds n instances.
func (st *stack) waitGatewaySees(t *testing.T, upstream string, n int) {
	t.Helper()
	wait, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	poll.Until(wait, t, fmt.Sprintf("the gateway to hold %d %s instances", n, upstream), func() bool {
		lines := st.gatewayLines(`"healthy instances changed"`)
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.Contains(lines[i].text, `"upstream":"`+upstream+`"`) {
				return strings.Contains(lines[i].text, fmt.Sprintf(`"instances":%d,`, n))
			}
		}
		return false
	})
}

// gatewayLines returns the gateway's log lines that contain substr.
func (st *stack) gatewayLines(substr string) []gatewayLine {
	st.mu.Lock()
	defer st.mu.Unlock()
	var lines []gatewayLine
	for _, l := range st.lines {
		if strings.Contains(l.text, substr) {
			lines = append(lines, l)
		}
	}
	return lines
}

// shopper is the steady load: each worker, about ten times a second,
// lists the products and, every third time, places a checkout (POST with
// an Idempotency-Key) and reads it back. It keeps the ground truth of what
// it asked for, for stack.verify.
type shopper struct {
	base     string
	token    string
	customer string // the id the gateway gives the customer: the token's subject
	http     *http.Client

	mu    sync.Mutex
	now   phaseCounts // of the current phase
	truth invariants.GroundTruth
	// unanswered are the checkouts asked for whose answer was lost: their
	// POST failed or was cut short, and the order may exist all the same.
	unanswered map[string]string // Idempotency-Key → body
}

// phaseCounts are the requests of one phase of the test.
type phaseCounts struct {
	sent, checkouts, failed int
	failures                []string // the first few
}

// newShopper logs in as alice and reads the catalog before any checkout:
// the ground truth's stock.
func newShopper(t *testing.T, base string) *shopper {
	c := invariants.NewClient(base, 10*time.Second)
	alice, err := c.Login(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := c.Catalog(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return &shopper{base: base, token: alice.Token, customer: alice.ID, http: &http.Client{Timeout: 10 * time.Second},
		truth: invariants.NewGroundTruth(catalog), unanswered: map[string]string{}}
}

func (s *shopper) do(ctx context.Context, method, path, key, body string) (int, []byte, error) {
	status, _, answer, err := s.send(ctx, method, path, key, body)
	return status, answer, err
}

// send sends one request as the shopper, not counted, and returns the
// answer's status, header and body.
func (s *shopper) send(ctx context.Context, method, path, key, body string) (int, http.Header, []byte, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, r)
	if err != nil {
		return 0, nil, nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// run is one worker, until ctx ends. The ticker paces the load; it
// synchronises nothing.
func (s *shopper) run(ctx context.Context, worker int) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.request(ctx, "GET", "/api/v1/products", "", "", http.StatusOK)
		if i%3 != 0 {
			continue
		}
		id, ok := s.checkout(ctx, fmt.Sprintf("w%d-%d", worker, i), i)
		if !ok {
			continue
		}
		s.request(ctx, "GET", "/api/v1/orders/"+id, "", "", http.StatusOK)
	}
}

// skus are the products checkouts buy, in turn: the demo catalog's most
// stocked, so that a run's checkouts rarely run out of stock.
var skus = []string{"STICKER-PACK", "KEYCHAIN-GOPHER", "PEN-GEL-SET", "COASTER-CORK-SET"}

// checkout places one order of the i-th product with the good card under
// key, counts it, and returns its id. The ground truth has the checkout
// before it is asked for.
func (s *shopper) checkout(ctx context.Context, key string, i int) (string, bool) {
	sku := skus[i%len(skus)]
	body := `{"card_number":"` + simulator.CardSucceeds + `","lines":[{"sku":"` + sku + `","quantity":1}]}`
	s.mu.Lock()
	s.truth.Ask(key, simulator.CardSucceeds, sku, 1, s.customer)
	s.unanswered[key] = body
	s.mu.Unlock()
	answer, ok := s.request(ctx, "POST", "/api/v1/orders", key, body, http.StatusAccepted)
	var created struct {
		ID string `json:"id"`
	}
	if !ok || json.Unmarshal(answer, &created) != nil || created.ID == "" {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truth.Answer(created.ID, key)
	delete(s.unanswered, key)
	s.now.checkouts++
	return created.ID, true
}

// answerAll asks again, with the same Idempotency-Key, for every checkout
// whose answer was lost, until the gateway answers each: the client's part
// of exactly-once, and what makes the ground truth complete (an order the
// gateway created but never answered would otherwise look like one nobody
// asked for). Call it once the load has stopped.
func (s *shopper) answerAll(ctx context.Context, t *testing.T) {
	t.Helper()
	c := invariants.NewClient(s.base, 10*time.Second)
	for key, body := range s.unanswered {
		var created struct {
			ID string `json:"id"`
		}
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		_, err := c.Retry(wait, "POST", "/api/v1/orders", s.token, key, json.RawMessage(body), &created)
		cancel()
		if err != nil {
			t.Fatalf("checkout %s asked again: %v", key, err)
		}
		s.truth.Answer(created.ID, key)
		delete(s.unanswered, key)
	}
}

// request sends one request and counts it, failed unless it answered want.
// A request cut short by the end of the load is not counted.
func (s *shopper) request(ctx context.Context, method, path, key, body string, want int) ([]byte, bool) {
	status, answer, err := s.do(ctx, method, path, key, body)
	if ctx.Err() != nil {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now.sent++
	if err != nil || status != want {
		s.now.failed++
		if len(s.now.failures) < 5 {
			s.now.failures = append(s.now.failures, fmt.Sprintf("%s %s: %d %v %s", method, path, status, err, bytes.TrimSpace(answer)))
		}
		return nil, false
	}
	return answer, true
}

// phase returns the counts since the last call and starts afresh.
func (s *shopper) phase() phaseCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.now
	s.now = phaseCounts{}
	return c
}

// waitRequests waits until the current phase has n more requests.
func (s *shopper) waitRequests(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	s.mu.Lock()
	target := s.now.sent + n
	s.mu.Unlock()
	wait, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	poll.Until(wait, t, fmt.Sprintf("%d more requests", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.now.sent >= target
	})
}

// orderView is as much of an order as the tests read.
type orderView struct {
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason"`
	Total        struct {
		Amount int64 `json:"amount"`
	} `json:"total"`
}

// order reads an order through the gateway.
func (s *shopper) order(ctx context.Context, id string) (orderView, error) {
	var o orderView
	code, body, err := s.do(ctx, "GET", "/api/v1/orders/"+id, "", "")
	if err != nil {
		return o, err
	}
	if code != http.StatusOK {
		return o, fmt.Errorf("GET order %s: %d %s", id, code, body)
	}
	return o, json.Unmarshal(body, &o)
}
