package main

// -overload: what each adaptive limiter of pkg/limit does to goodput and
// latency past capacity. See the package doc and docs/benchmarks.md.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// overloadServices are the services behind pkg/limit; each gets the
// candidate through <SERVICE>_LIMIT_RULES. (The PSP simulator is never
// limited.)
var overloadServices = []string{"GATEWAY", "ORDER", "INVENTORY", "PAYMENT"}

// share is one kind of request of a mix and its part of the arrivals, in
// per mille.
type share struct {
	kind     string
	perMille int
}

// mixes are the traffic of the open loop (-mix). shop, the default: mostly
// browsing, some checkouts and the polling of their orders, a few logins
// (bcrypt, the most expensive request the gateway serves). browse: only
// the two reads, in the same proportion, so that no request leaves work
// behind it once answered — a checkout's saga goes on in order, inventory
// and payment after its 202, where no HTTP limiter sees it.
var mixes = map[string][]share{
	"shop": {
		{"list products", 555},
		{"product page", 200},
		{"login", 5},
		{"place order", 120},
		{"poll order", 120},
	},
	"browse": {
		{"list products", 735},
		{"product page", 265},
	},
}

// overloadLevel is the outcome of one offered rate.
type overloadLevel struct {
	factor    float64 // of capacity
	rate      float64 // arrivals per second offered
	retries   int     // requests re-sent after a rejection (retry storm)
	total     int     // answers and failures in the window
	good      int     // 2xx within the SLO
	admitted  []time.Duration
	rejected  []time.Duration // 429 and 503 with Retry-After
	errors    int             // neither 2xx nor a rejection: 5xx, timeouts, connection errors
	errKinds  map[string]int  // errors by method, path and status or error
	window    time.Duration
	cpuSecond float64 // the stack's CPU use in the window, in cores
	// stackWait and generatorWait are how long the threads of the stack
	// and of bench waited for a CPU while runnable, per second of the
	// window (/proc/<pid>/task/*/schedstat): the CPU others took from them.
	stackWait, generatorWait float64
}

func (l *overloadLevel) goodput() float64 { return float64(l.good) / l.window.Seconds() }
func (l *overloadLevel) errorRate() float64 {
	if l.total == 0 {
		return 0
	}
	return float64(l.errors) / float64(l.total)
}

// candidate is one row group of the table: an algorithm and its levels.
type candidate struct {
	name   string // the algorithm, plus the retry variant if any
	levels []*overloadLevel
}

// capacityStep is one rate of the capacity search.
type capacityStep struct {
	rate float64
	p99  time.Duration
	errs float64
}

// retryMode is how clients answer a rejection in the retry-storm variant.
type retryMode string

const (
	noRetry         retryMode = ""
	retryAfterDelay retryMode = "after Retry-After"
	retryAtOnce     retryMode = "at once"
)

// maxRetries bounds the retries of one request in the retry storm.
const maxRetries = 3

// runOverload measures capacity without a limiter, then each algorithm at
// each multiple of it, then the retry storms, and prints the table.
func runOverload(ctx context.Context, o options, stdout io.Writer) error {
	fmt.Fprintf(stdout, "overload: stack on CPUs %q, generator on the CPUs bench runs on; SLO %s; mix %s %v\n", o.stackCPUs, o.slo, o.mix, mixes[o.mix])
	none := "none"
	st, err := startStack(ctx, o, none)
	if err != nil {
		return err
	}
	steps, capacity, unloaded, err := findCapacity(ctx, o, st, stdout)
	if err != nil {
		return errors.Join(err, st.stop())
	}
	how := "p99 first above 2× the p99 at 0.3 C"
	if o.capacity > 0 {
		how = "given by -capacity; the p99 at 0.3 C"
	}
	fmt.Fprintf(stdout, "capacity C = %.0f requests/s (%s, %s)\n", capacity, how, unloaded)
	// Every candidate on a fresh stack, "none" too: the search left a
	// backlog behind.
	if err := st.stop(); err != nil {
		return err
	}
	var cands []*candidate
	for i, alg := range o.algorithms {
		if i > 0 {
			if err := st.stop(); err != nil {
				return err
			}
		}
		if st, err = startStack(ctx, o, alg); err != nil {
			return err
		}
		c := &candidate{name: alg}
		for _, f := range o.levels {
			lv, err := st.attack(ctx, o, f, capacity, noRetry)
			if err != nil {
				return errors.Join(err, st.stop())
			}
			c.levels = append(c.levels, lv)
			fmt.Fprintf(stdout, "  %-10s %.1f C: %s\n", alg, f, lv.line(o))
		}
		cands = append(cands, c)
	}
	if err := st.stop(); err != nil {
		return err
	}
	best := choose(cands, unloaded, o.slo)
	stormed := best
	if stormed == nil {
		stormed = bestGoodput(cands)
	}
	if o.retryStorm && stormed != nil {
		for _, alg := range []string{none, stormed.name} {
			for _, mode := range []retryMode{retryAfterDelay, retryAtOnce} {
				if st, err = startStack(ctx, o, alg); err != nil {
					return err
				}
				lv, err := st.attack(ctx, o, 3, capacity, mode)
				if stopErr := st.stop(); err == nil {
					err = stopErr
				}
				if err != nil {
					return err
				}
				c := &candidate{name: alg + ", retries " + string(mode), levels: []*overloadLevel{lv}}
				fmt.Fprintf(stdout, "  %-10s 3 C, retries %s: %s\n", alg, mode, lv.line(o))
				cands = append(cands, c)
			}
		}
	}
	printOverload(stdout, o, steps, capacity, unloaded, cands, best)
	if o.svg != "" {
		if err := plotOverload(o.svg, capacity, cands); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "figure: %s\n", o.svg)
	}
	return nil
}

// findCapacity raises the rate by a quarter at a time until p99 is ten
// times the first step's, or errors pass 1 %, and returns C: the first
// rate whose p99 exceeds twice the p99 measured nearest 0.3 C. With
// -capacity it searches nothing and measures the p99 at 0.3 C only.
func findCapacity(ctx context.Context, o options, st *stack, stdout io.Writer) ([]capacityStep, float64, time.Duration, error) {
	// A first step, not counted, warms the stack: connections, caches,
	// the first sagas.
	if _, err := st.attackRate(ctx, o, o.startRate, noRetry, o.stepDuration); err != nil {
		return nil, 0, 0, err
	}
	if o.capacity > 0 { // given: only the unloaded p99 is measured
		lv, err := st.attackRate(ctx, o, 0.3*o.capacity, noRetry, o.stepDuration)
		if err != nil {
			return nil, 0, 0, err
		}
		fmt.Fprintf(stdout, "  unloaded, 0.3 C = %.0f/s: %s\n", 0.3*o.capacity, lv.line(o))
		step := capacityStep{rate: 0.3 * o.capacity, p99: percentile(lv.admitted, 99), errs: lv.errorRate()}
		return []capacityStep{step}, o.capacity, step.p99, nil
	}
	var steps []capacityStep
	for rate := o.startRate; rate <= 20_000; rate *= 1.25 {
		lv, err := st.attackRate(ctx, o, rate, noRetry, o.stepDuration)
		if err != nil {
			return nil, 0, 0, err
		}
		p99 := percentile(lv.admitted, 99)
		steps = append(steps, capacityStep{rate: rate, p99: p99, errs: lv.errorRate()})
		fmt.Fprintf(stdout, "  capacity search %.0f/s: %s\n", rate, lv.line(o))
		if p99 > 10*steps[0].p99 || lv.errorRate() > 0.01 {
			break
		}
	}
	for i, s := range steps {
		ref := nearest(steps[:i+1], 0.3*s.rate)
		if s.p99 > 2*ref.p99 || s.errs > 0.01 {
			return steps, s.rate, ref.p99, nil
		}
	}
	return steps, 0, 0, errors.New("capacity not reached: the last rate of the search still met the SLO; raise -start-rate")
}

// nearest returns the step whose rate is nearest rate.
func nearest(steps []capacityStep, rate float64) capacityStep {
	best := steps[0]
	for _, s := range steps {
		if abs(s.rate-rate) < abs(best.rate-rate) {
			best = s
		}
	}
	return best
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// choose returns the candidate with the best goodput at 3 C and 5 C
// together among those whose admitted p99 at 3 C stays within 2× the
// unloaded p99, or nil if none does.
func choose(cands []*candidate, unloaded, slo time.Duration) *candidate {
	var best *candidate
	var bestGood float64
	for _, c := range cands {
		var good float64
		ok := false
		for _, lv := range c.levels {
			if lv.factor == 3 {
				ok = percentile(lv.admitted, 99) <= 2*unloaded
			}
			if lv.factor >= 3 {
				good += lv.goodput()
			}
		}
		if ok && c.name != "none" && (best == nil || good > bestGood) {
			best, bestGood = c, good
		}
	}
	return best
}

// bestGoodput returns the limiter with the best goodput at 3 C and 5 C
// together, whatever its latency; nil if there is none but "none".
func bestGoodput(cands []*candidate) *candidate {
	var best *candidate
	var bestGood float64
	for _, c := range cands {
		var good float64
		for _, lv := range c.levels {
			if lv.factor >= 3 {
				good += lv.goodput()
			}
		}
		if c.name != "none" && (best == nil || good > bestGood) {
			best, bestGood = c, good
		}
	}
	return best
}

// line is one level in a log line.
func (l *overloadLevel) line(o options) string {
	return fmt.Sprintf("offered %.0f/s (+%d retries), goodput %.1f/s, admitted p50 %s p99 %s, rejection p99 %s (%d), errors %.2f %% %v, stack CPU %.2f cores",
		l.rate, l.retries, l.goodput(), ms(percentile(l.admitted, 50)), ms(percentile(l.admitted, 99)),
		ms(percentile(l.rejected, 99)), len(l.rejected), 100*l.errorRate(), l.errKinds, l.cpuSecond) +
		fmt.Sprintf(", waited for a CPU: stack %.2f s/s, generator %.2f s/s", l.stackWait, l.generatorWait)
}

// stack is the shop started by the launcher for one candidate.
type stack struct {
	l       *launcher
	gateway string
	dir     string
	log     string
	shop    *targets
}

// startStack starts the shop with every service's limiter set to alg, on
// o.stackCPUs if set, in a directory of its own under o.dir. A launcher
// that fails to start is tried twice more, on other ports: freePortRange's
// ports may be taken by another program before the launcher binds them.
func startStack(ctx context.Context, o options, alg string) (st *stack, err error) {
	for range 3 {
		if st, err = startStackOnce(ctx, o, alg); err == nil || ctx.Err() != nil {
			return st, err
		}
		fmt.Fprintf(os.Stderr, "bench: %s: %v; trying again\n", alg, err)
	}
	return nil, err
}

func startStackOnce(ctx context.Context, o options, alg string) (*stack, error) {
	dir, err := os.MkdirTemp(o.dir, "stack-"+alg+"-")
	if err != nil {
		return nil, err
	}
	portBase, err := freePortRange(pspOffset + 1)
	if err != nil {
		return nil, err
	}
	brokerPort, err := freePortRange(1)
	if err != nil {
		return nil, err
	}
	// Flow control off unless -rules sets it: the table compares the
	// adaptive algorithms.
	doc := maps.Clone(o.rules)
	if doc == nil {
		doc = map[string]json.RawMessage{}
	}
	doc["adaptive"], _ = json.Marshal(alg)
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	rules := string(b)
	var env []string
	for _, s := range overloadServices {
		env = append(env, s+"_LIMIT_RULES="+rules)
	}
	args := []string{"-mode", o.mode, "-dir", dir, "-bin", o.bin,
		"-port-base", strconv.Itoa(portBase), "-broker-port", strconv.Itoa(brokerPort)}
	path := filepath.Join(o.bin, "launcher")
	if o.stackCPUs != "" {
		args = append([]string{"-c", o.stackCPUs, path}, args...)
		path = "taskset"
	}
	logPath := filepath.Join(dir, "launcher.log")
	l, err := startLauncher(path, logPath, env, args...)
	if err != nil {
		return nil, err
	}
	st := &stack{l: l, gateway: "http://127.0.0.1:" + strconv.Itoa(portBase), dir: dir, log: logPath}
	if err := l.waitReady(ctx, 3*time.Minute); err != nil {
		return nil, errors.Join(fmt.Errorf("%w (see %s)", err, logPath), st.stop())
	}
	if st.shop, err = newTargets(ctx, st.gateway, o.products, mixes[o.mix]); err != nil {
		return nil, errors.Join(err, st.stop())
	}
	return st, nil
}

func (st *stack) stop() error {
	if err := st.l.stop(time.Minute); err != nil {
		return fmt.Errorf("stop the stack: %w (see %s)", err, st.log)
	}
	return nil
}

// attack offers factor × capacity for o.warmup and then o.duration.
func (st *stack) attack(ctx context.Context, o options, factor, capacity float64, mode retryMode) (*overloadLevel, error) {
	lv, err := st.attackRate(ctx, o, factor*capacity, mode, o.duration)
	if lv != nil {
		lv.factor = factor
	}
	return lv, err
}

// attackRate offers rate arrivals per second, open loop, for o.warmup and
// then window, measuring the window, and waits for the last answers and
// a pause before it returns.
func (st *stack) attackRate(ctx context.Context, o options, rate float64, mode retryMode, window time.Duration) (*overloadLevel, error) {
	lv := &overloadLevel{rate: rate, window: window}
	attacker := vegeta.NewAttacker(vegeta.Timeout(o.requestTimeout), vegeta.KeepAlive(true), vegeta.Connections(10_000))
	start := time.Now()
	windowStart, windowEnd := start.Add(o.warmup), start.Add(o.warmup+window)
	var mu sync.Mutex
	lv.errKinds = map[string]int{}
	record := func(sent time.Time, code int, latency time.Duration, header http.Header, failed bool, what string) {
		if sent.Before(windowStart) || !sent.Before(windowEnd) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lv.total++
		switch {
		case !failed && (code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable) && header.Get("Retry-After") != "":
			lv.rejected = append(lv.rejected, latency)
		case !failed && code >= 200 && code < 300:
			lv.admitted = append(lv.admitted, latency)
			if latency <= o.slo {
				lv.good++
			}
		default:
			lv.admitted = append(lv.admitted, latency)
			lv.errors++
			if len(lv.errKinds) < 20 {
				lv.errKinds[what]++
			}
		}
	}
	var retries sync.WaitGroup
	var retried atomic.Int64
	// The CPU is sampled at the window's ends; the generator's CPU may be
	// busy, so the time between the samples is taken as it was, not as
	// planned.
	var cpuBefore, cpuAfter cpuSnapshot
	var cpuFrom, cpuTo time.Time
	var waitBefore, waitAfter runWait
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		if sleepUntil(ctx, windowStart) != nil {
			return
		}
		cpuBefore, cpuFrom = sampleCPU(st.l.pid(), st.dir), time.Now()
		waitBefore = sampleWait(cpuBefore)
		if sleepUntil(ctx, windowEnd) != nil {
			return
		}
		cpuAfter, cpuTo = sampleCPU(st.l.pid(), st.dir), time.Now()
		waitAfter = sampleWait(cpuAfter)
	}()
	st.shop.retries.Store(mode != noRetry)
	pacer := vegeta.ConstantPacer{Freq: max(1, int(rate+0.5)), Per: time.Second}
	for res := range attacker.Attack(st.shop.next, pacer, o.warmup+window, "overload") {
		if ctx.Err() != nil {
			attacker.Stop()
		}
		failed := res.Code == 0 // vegeta also sets Error to the status line of a 4xx or 5xx
		record(res.Timestamp, int(res.Code), res.Latency, res.Headers, failed, kindOf(res.Method, res.URL, int(res.Code), res.Error))
		st.shop.learn(res)
		if mode != noRetry && !failed && res.Headers.Get("Retry-After") != "" &&
			(res.Code == http.StatusTooManyRequests || res.Code == http.StatusServiceUnavailable) {
			st.retry(ctx, o, mode, res, 1, &retries, &retried, record)
		}
	}
	retries.Wait()
	<-sampled
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if span := cpuTo.Sub(cpuFrom); span >= window/2 {
		for _, c := range cpuAfter.since(cpuBefore) {
			if c.name != "bench" {
				lv.cpuSecond += c.seconds
			}
		}
		lv.cpuSecond /= span.Seconds()
		lv.stackWait = (waitAfter.stack - waitBefore.stack).Seconds() / span.Seconds()
		lv.generatorWait = (waitAfter.generator - waitBefore.generator).Seconds() / span.Seconds()
	} else {
		lv.cpuSecond = math.NaN() // the sampler itself was kept from the CPU
		lv.stackWait, lv.generatorWait = math.NaN(), math.NaN()
	}
	lv.retries = int(retried.Load())
	slices.Sort(lv.admitted)
	slices.Sort(lv.rejected)
	return lv, st.settle(ctx, o.pause)
}

// idleCores is the stack's CPU use below which it counts as idle.
const idleCores = 0.2

// settle waits until the stack has worked off what the last level queued —
// sagas, outbox messages, requests still in its queues — shown by its CPU
// use falling below idleCores over a second, or until max passes, so that
// one level's backlog does not weigh on the next.
func (st *stack) settle(ctx context.Context, max time.Duration) error {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		before, from := sampleCPU(st.l.pid(), st.dir), time.Now()
		if err := sleepUntil(ctx, from.Add(time.Second)); err != nil {
			return err
		}
		var used float64
		for _, c := range sampleCPU(st.l.pid(), st.dir).since(before) {
			if c.name != "bench" {
				used += c.seconds
			}
		}
		if used/time.Since(from).Seconds() < idleCores {
			return nil
		}
	}
	return nil
}

// retry sends again the request rejected in res, as a client would: after
// its Retry-After, or at once, up to maxRetries times.
func (st *stack) retry(ctx context.Context, o options, mode retryMode, res *vegeta.Result, attempt int, wg *sync.WaitGroup, n *atomic.Int64,
	record func(time.Time, int, time.Duration, http.Header, bool, string)) {
	t, ok := st.shop.sent(res.Headers.Get("X-Request-Id"))
	if !ok || attempt > maxRetries {
		return
	}
	var delay time.Duration
	if mode == retryAfterDelay {
		s, _ := strconv.Atoi(res.Headers.Get("Retry-After"))
		delay = time.Duration(s) * time.Second
	}
	wg.Add(1)
	time.AfterFunc(delay, func() {
		defer wg.Done()
		if ctx.Err() != nil {
			return
		}
		n.Add(1)
		req, err := t.Request()
		if err != nil {
			return
		}
		req = req.WithContext(ctx)
		sent := time.Now()
		resp, err := st.shop.client.Do(req)
		latency := time.Since(sent)
		if err != nil {
			record(sent, 0, latency, nil, true, kindOf(req.Method, req.URL.String(), 0, err.Error()))
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		record(sent, resp.StatusCode, latency, resp.Header, false, kindOf(req.Method, req.URL.String(), resp.StatusCode, ""))
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && resp.Header.Get("Retry-After") != "" {
			r := &vegeta.Result{Headers: resp.Header}
			r.Headers.Set("X-Request-Id", req.Header.Get("X-Request-Id"))
			st.retry(ctx, o, mode, r, attempt+1, wg, n, record)
		}
	})
}

// kindOf names an error for the log: method, the path up to its last
// segment, and the status or the error.
func kindOf(method, url string, code int, err string) string {
	if i := strings.LastIndexByte(url, '/'); i > 0 && !strings.HasSuffix(url, "/orders") && !strings.HasSuffix(url, "/login") {
		url = url[:i] + "/…"
	}
	if err != "" {
		if len(err) > 60 {
			err = err[len(err)-60:]
		}
		return method + " " + url + ": " + err
	}
	return method + " " + url + ": " + strconv.Itoa(code)
}

// targets makes the requests of the mix. Safe for concurrent use: vegeta
// calls next from its workers.
type targets struct {
	base    string
	mix     []share
	client  *http.Client
	tokens  []string // the demo customers', alice's first
	skus    []string
	mu      sync.Mutex
	orders  []string // ids of recent orders, a ring
	nextOrd int
	byID    sync.Map    // request id → *vegeta.Target, while retries is set
	retries atomic.Bool // keep the requests sent, to retry them
	seq     atomic.Uint64
}

// maxOrders is how many recent order ids are polled.
const maxOrders = 1000

func newTargets(ctx context.Context, gateway string, products int, mix []share) (*targets, error) {
	s := newShop(gateway, 100)
	t := &targets{base: gateway, client: s.client, mix: mix}
	for _, u := range []string{"alice", "bob"} {
		tok, err := s.login(ctx, u, u+"-demo")
		if err != nil {
			return nil, fmt.Errorf("log in as %s: %w", u, err)
		}
		t.tokens = append(t.tokens, tok)
	}
	admin, err := s.login(ctx, "admin", "admin-demo")
	if err != nil {
		return nil, fmt.Errorf("log in as admin: %w", err)
	}
	if t.skus, err = s.inStock(ctx, products); err != nil {
		return nil, err
	}
	for _, sku := range t.skus {
		if err := s.restock(ctx, admin, sku, stockPerProduct); err != nil {
			return nil, fmt.Errorf("restock %s: %w", sku, err)
		}
	}
	return t, nil
}

// next fills tgt with the next request of the mix.
func (t *targets) next(tgt *vegeta.Target) error {
	id := "ovl-" + strconv.FormatUint(t.seq.Add(1), 36)
	*tgt = vegeta.Target{Header: http.Header{"X-Request-Id": {id}}}
	n := rand.IntN(1000)
	kind := t.mix[len(t.mix)-1].kind
	for _, m := range t.mix {
		if n < m.perMille {
			kind = m.kind
			break
		}
		n -= m.perMille
	}
	if kind == "poll order" {
		t.mu.Lock()
		if len(t.orders) == 0 {
			kind = "product page"
		} else {
			tgt.URL = t.base + "/api/v1/orders/" + t.orders[rand.IntN(len(t.orders))]
		}
		t.mu.Unlock()
	}
	sku := t.skus[rand.IntN(len(t.skus))]
	// One customer places and polls every order: a customer may read
	// only their own.
	token := t.tokens[0]
	switch kind {
	case "list products":
		tgt.Method, tgt.URL = http.MethodGet, t.base+"/api/v1/products?limit=20"
	case "product page":
		tgt.Method, tgt.URL = http.MethodGet, t.base+"/api/v1/products/"+sku
	case "login":
		tgt.Method, tgt.URL = http.MethodPost, t.base+"/api/v1/login"
		tgt.Body = []byte(`{"username":"alice","password":"alice-demo"}`)
		tgt.Header.Set("Content-Type", "application/json")
	case "place order":
		tgt.Method, tgt.URL = http.MethodPost, t.base+"/api/v1/orders"
		tgt.Body = []byte(`{"card_number":"` + goodCard + `","lines":[{"sku":"` + sku + `","quantity":1}]}`)
		tgt.Header.Set("Content-Type", "application/json")
		tgt.Header.Set("Authorization", "Bearer "+token)
		tgt.Header.Set("Idempotency-Key", id)
	case "poll order":
		tgt.Method = http.MethodGet
		tgt.Header.Set("Authorization", "Bearer "+token)
	}
	if t.retries.Load() {
		c := *tgt
		c.Header = tgt.Header.Clone()
		t.byID.Store(id, &c)
	}
	return nil
}

// sent returns the request of id, kept while retries are on, once.
func (t *targets) sent(id string) (*vegeta.Target, bool) {
	v, ok := t.byID.LoadAndDelete(id)
	if !ok {
		return nil, false
	}
	return v.(*vegeta.Target), true
}

// learn keeps the id of a placed order for polling, and forgets the
// target of an answered request that will not be retried.
func (t *targets) learn(res *vegeta.Result) {
	if res.Code != http.StatusTooManyRequests && res.Code != http.StatusServiceUnavailable {
		t.byID.Delete(res.Headers.Get("X-Request-Id"))
	}
	if res.Method != http.MethodPost || res.Code != http.StatusAccepted || !strings.HasSuffix(res.URL, "/api/v1/orders") {
		return
	}
	var created struct{ ID string }
	if json.Unmarshal(res.Body, &created) != nil || created.ID == "" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.orders) < maxOrders {
		t.orders = append(t.orders, created.ID)
		return
	}
	t.orders[t.nextOrd] = created.ID
	t.nextOrd = (t.nextOrd + 1) % maxOrders
}

// runWait is the time threads spent runnable but waiting for a CPU.
type runWait struct{ stack, generator time.Duration }

// sampleWait sums the run-queue waits of every thread of the processes of
// snap (bench's own under generator, the others' under stack).
func sampleWait(snap cpuSnapshot) runWait {
	var w runWait
	self := os.Getpid()
	for pid := range snap {
		tasks, _ := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "task"))
		for _, task := range tasks {
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "task", task.Name(), "schedstat"))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b)) // on-CPU ns, waiting ns, timeslices
			if len(f) < 2 {
				continue
			}
			ns, _ := strconv.ParseInt(f[1], 10, 64)
			if pid == self {
				w.generator += time.Duration(ns)
			} else {
				w.stack += time.Duration(ns)
			}
		}
	}
	return w
}
