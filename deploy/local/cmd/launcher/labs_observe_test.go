package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/deploy/local/internal/labs"
	"github.com/microshop/microshop/loadtest"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// The actions of labs 3, 6 and 8 in TestLabs, each what its README tells
// the learner to do, sized for CI.

// actEBPF is lab 6's action: the README's curl commands — product pages,
// a product that does not exist, a route that does not exist, and health
// checks, which only the probe counts. Without the probe (not root) the
// lab cannot be done; CI's machine loads it.
func actEBPF(t *testing.T, st *labStack) {
	if st.Probe == "" {
		servicetest.Require(t, "the eBPF probe (make run-full as root)", fmt.Errorf("the launcher did not start it:\n%s", st.l.output()))
	}
	// The README's wait for ebpf_probe_targets{http="true"} to count every
	// service is startLabStack's, before the first lab: a request served
	// before the probe traces its server is the SDK's alone, for good.
	for _, r := range []struct {
		path string
		n    int
	}{
		{"/api/v1/products/MUG-CLASSIC", 30},
		{"/api/v1/products/NO-SUCH-MUG", 5},
		{"/api/v1/no-such-route", 3},
		{"/healthz", 10},
	} {
		for range r.n {
			resp, err := http.Get(st.Gateway + r.path)
			if err != nil {
				t.Fatalf("GET %s: %v", r.path, err)
			}
			resp.Body.Close()
		}
	}
}

// actBurnRate is lab 8's action: two checkouts a second with the
// declined card until CheckoutErrorBudgetBurnFast fires, then the
// checkout scenario (the good card) until it clears. Half-way, fired and
// not yet cleared, the check must still fail.
func actBurnRate(t *testing.T, st *labStack) {
	c := apitest.NewClient(t, st.Gateway)
	token := c.Login(t, "alice", "alice-demo")
	firing := func() bool {
		return series(t, st.Prometheus, `ALERTS{alertname="CheckoutErrorBudgetBurnFast",alertstate="firing"}`) > 0
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start, placed := time.Now(), 0
	poll.Until(ctx, t, "CheckoutErrorBudgetBurnFast firing", func() bool {
		for range 2 { // the README's loop: one every half second
			placed++
			resp := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
				Header: map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": fmt.Sprintf("lab-8-declined-%d", placed)},
				Body:   `{"card_number":"4000000000000002","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`})
			if resp.Status != http.StatusAccepted {
				t.Fatalf("place a declined checkout: %d %s", resp.Status, resp.Body)
			}
			time.Sleep(500 * time.Millisecond) // the README's pace, not a synchronisation
		}
		return firing()
	})
	t.Logf("CheckoutErrorBudgetBurnFast fired after %d declined checkouts, %v", placed, time.Since(start).Round(time.Second))
	labHalfway(t, st, 8)

	start = time.Now()
	for firing() {
		if time.Since(start) > 3*time.Minute {
			t.Fatal("CheckoutErrorBudgetBurnFast still firing after 3 minutes of good checkouts")
		}
		runLoad(t, st, "checkout", 10, 15*time.Second)
	}
	t.Logf("CheckoutErrorBudgetBurnFast cleared after %v of good checkouts", time.Since(start).Round(time.Second))
}

// overloadPhase and overloadRate are each overload of lab 3 in the test:
// the check's 30 s window and a few scrapes more, at first at half the
// scenario's 600/s (the README's make load: 600/s for a minute), which on a
// crowded 2-core machine starved the load generator itself — most requests
// went unanswered and the check could not find the overload. On a quiet
// machine 300/s may not overload the stack (CI, 2026-12-06: p99 335 ms at
// worst; here, 2026-12-07: 728 ms); the test then sends more, as the check
// tells the learner to, by half again each time up to overloadMaxRate, in
// at most overloadRuns runs per half.
const (
	overloadPhase   = 40 * time.Second
	overloadRate    = 300
	overloadMaxRate = 600
	overloadRuns    = 3
)

// actOverload is lab 3's action: the adaptive limiter off in the four
// services through Consul KV, the overload scenario; the limiter back (the
// keys deleted), a pause, the overload again. Half-way, after the overload
// without a limiter, the check must still fail.
func actOverload(t *testing.T, st *labStack) {
	u, err := url.Parse(st.Consul)
	if err != nil {
		t.Fatal(err)
	}
	consul, err := api.NewClient(&api.Config{Address: u.Host})
	if err != nil {
		t.Fatal(err)
	}
	services := []string{"gateway", "order", "inventory", "payment"}
	for _, svc := range services {
		if _, err := consul.KV().Put(&api.KVPair{Key: liverules.Key(svc, "limit"), Value: []byte(`{"adaptive": "none"}`)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	st.waitLimit(t, services, func(limit float64) bool { return limit == 0 }, "adaptive limit off")
	// The overload without a limiter seen; an earlier lab may have left a
	// period of shedding, seen as the limiter-on half.
	rate := overloadUntil(t, st, overloadRate, "without a limiter", func(v labs.Verdict) bool {
		return slices.ContainsFunc(v.Seen, func(line string) bool { return strings.HasPrefix(line, "without a limiter:") })
	})
	labHalfway(t, st, 3)

	for _, svc := range services {
		if _, err := consul.KV().Delete(liverules.Key(svc, "limit"), nil); err != nil {
			t.Fatal(err)
		}
	}
	st.waitLimit(t, services, func(limit float64) bool { return limit > 0 }, "adaptive limit back")
	settle(t, st)
	// At the rate that overloaded the stack without a limiter. A rate that
	// only just did may not make the limiters shed, or leave the served
	// p99 no lower than without them, and the check then tells the learner
	// to run it again. A single run here is the likeliest cause of
	// TestLabs' failure in CI on 2026-12-07, whose excerpt ended in the
	// order reads of this last overload.
	overloadUntil(t, st, rate, "with the limiter on", labs.Verdict.Passed)
}

// overloadUntil runs lab 3's overload at rate and then its check, and
// again, half as fast again each time up to overloadMaxRate and after the
// stack worked the last one off, until done says the check saw what this
// half of the lab is for, or after overloadRuns runs. It returns the rate
// of the last run.
func overloadUntil(t *testing.T, st *labStack, rate int, half string, done func(labs.Verdict) bool) int {
	t.Helper()
	lab, _ := labs.Find(3)
	for run := 1; ; run++ {
		runLoad(t, st, "overload", rate, overloadPhase)
		v, err := lab.Check(t.Context(), st.Stack)
		if err != nil {
			t.Fatalf("lab 3 after the overload %s at %d/s: %v", half, rate, err)
		}
		if done(v) || run == overloadRuns {
			return rate
		}
		t.Logf("lab 3 after the overload %s at %d/s, not yet; sending more:\n%s", half, rate, v)
		rate = min(rate*3/2, overloadMaxRate)
		settle(t, st)
	}
}

// labHalfway checks that lab n's check sees the first half of its action
// done and still misses the second.
func labHalfway(t *testing.T, st *labStack, n int) {
	t.Helper()
	lab, _ := labs.Find(n)
	v, err := lab.Check(t.Context(), st.Stack)
	if err != nil {
		t.Fatalf("lab %d half-way: %v", n, err)
	}
	if len(v.Seen) == 0 || v.Passed() {
		t.Errorf("lab %d half-way: want the first half seen and the second missing:\n%s", n, v)
	}
	t.Logf("lab %d half-way:\n%s", n, v)
}

// runLoad runs scenario of loadtest/ with our runner, as make load does,
// at rate requests a second (0: the scenario's own) for d.
func runLoad(t *testing.T, st *labStack, scenario string, rate int, d time.Duration) {
	t.Helper()
	defs, err := loadtest.Load()
	if err != nil {
		t.Fatal(err)
	}
	sc := defs.Scenarios[scenario]
	if rate == 0 {
		rate = sc.Phases[0].Rate
	}
	sc.Smoke = []loadtest.Phase{{Rate: rate, Duration: d.String()}}
	defs.Scenarios[scenario] = sc
	r, err := loadtest.Run(t.Context(), defs, scenario, loadtest.Options{BaseURL: st.Gateway, Smoke: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range r.Requests {
		n += k
	}
	t.Logf("%s at %d/s for %v: %d requests, statuses %v, %d checkouts accepted, %d confirmed",
		scenario, rate, d, n, r.Statuses, r.Checkouts, r.Confirmed)
}

// waitLimit waits until the limiter_limit of every service of services
// satisfies ok, after their limit rules changed in Consul: the change
// applied (liverules_applied_total moved).
func (st *labStack) waitLimit(t *testing.T, services []string, ok func(float64) bool, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, svc := range services {
		applied := `liverules_applied_total{key="` + liverules.Key(svc, "limit") + `"}`
		poll.Until(ctx, t, svc+": "+what, func() bool {
			return metric(st.services[svc], applied) >= 1 && ok(metric(st.services[svc], "limiter_limit"))
		})
	}
}

// settle waits, as the README's minute between the two overloads does,
// until no checkout saga is in flight and the gateway serves the product
// list again (its breakers closed): the first overload worked off.
func settle(t *testing.T, st *labStack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	poll.Until(ctx, t, "no saga in flight and the product list served", func() bool {
		if metric(st.services["order"], `saga_instances{status="RUNNING"}`) != 0 ||
			metric(st.services["order"], `saga_instances{status="COMPENSATING"}`) != 0 {
			return false
		}
		resp, err := http.Get(st.Gateway + "/api/v1/products")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	t.Logf("the first overload worked off in %v", time.Since(start).Round(time.Second))
}
