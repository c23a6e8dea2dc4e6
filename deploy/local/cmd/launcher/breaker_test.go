package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/faultinject/toxitest"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/poll"
)

// pspRules are payment's breaker rules in this test, put in Consul KV while
// the stack runs: a two-second window, five calls to decide, half of them
// slower than 500ms or failed trip it; three seconds open, then one probe.
const pspRules = `{"psp": {"window": "2s", "minRequests": 5, "errorRatio": 0.5, "slowCall": "500ms", "slowRatio": 0.5, "openFor": "3s", "probes": 1}}`

// TestPSPBreaker puts Toxiproxy between payment and the payment provider of
// the running shop and checkouts through the gateway meanwhile: added
// latency trips payment's slow-call breaker, connection resets its
// error-ratio breaker, and removing the toxic closes it again through
// half-open. While it is open, checkouts end CANCELLED at once with the
// reason "charge-payment: payment provider unavailable"; afterwards they are
// CONFIRMED again. Once the load stops every order is final and the
// provider's records agree with it: captured minus refunded is the total of
// a confirmed order and 0 for a cancelled one. The rules come from Consul
// KV, changed while payment runs. Trip and recovery times are logged, not
// asserted.
func TestPSPBreaker(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the stack with Toxiproxy; run without -short")
	}
	tp := toxitest.Start(t)
	var proxy *toxiclient.Proxy
	st := startStack(t, stackOptions{
		replicas: 1,
		// A charge with no answer is compensated after 5s, not 15s.
		orderEnv:   []string{"ORDER_CHARGE_TIMEOUT=5s", "ORDER_SAGA_RETRY_MAX=5s"},
		paymentEnv: []string{"PAYMENT_PSP_TIMEOUT=2s"},
		pspVia: func(psp string) string {
			proxy = tp.Proxy(t, "psp", psp)
			return proxy.Listen
		},
	})
	ctx := t.Context()
	key := liverules.Key("payment", "breaker")
	if _, err := st.consul.Client().KV().Put(&api.KVPair{Key: key, Value: []byte(pspRules)}, nil); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	poll.Until(wait, t, "payment applying the rules from consul", func() bool {
		return metric(st.payment, `liverules_applied_total{key="`+key+`"}`) >= 1
	})
	cancel()

	shop := newShopper(t, st.gateway)
	placed := &placements{}
	loadCtx, stopLoad := context.WithCancel(ctx)
	var load sync.WaitGroup
	load.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond) // paces the load; synchronises nothing
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
			at := time.Now()
			if id, ok := shop.checkout(loadCtx, "breaker-"+strconv.Itoa(i), i); ok {
				placed.add(id, at)
			}
		}
	})
	defer func() { stopLoad(); load.Wait() }()

	confirmedAfter := func(since time.Time, what string) {
		t.Helper()
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		poll.UntilNil(wait, t, what, func() error {
			for _, p := range placed.since(since) {
				if o, err := shop.order(wait, p.id); err == nil && o.Status == "CONFIRMED" {
					return nil
				}
			}
			return fmt.Errorf("no order placed since then confirmed yet")
		})
	}
	confirmedAfter(time.Now(), "a checkout confirmed with the PSP healthy")

	for _, fault := range []struct {
		name, toxic, stream string
		attrs               toxiclient.Attributes
		strategy            string
	}{
		{"latency", "latency", "downstream", toxiclient.Attributes{"latency": 1000}, "slow-call ratio"},
		{"connection resets", "reset_peer", "upstream", toxiclient.Attributes{"timeout": 0}, "error ratio"},
	} {
		opened := metric(st.payment, `breaker_transitions_total{to="open",upstream="psp"}`)
		closed := metric(st.payment, `breaker_transitions_total{to="closed",upstream="psp"}`)
		faultAt := time.Now()
		if _, err := proxy.AddToxic("fault", fault.toxic, fault.stream, 1, fault.attrs); err != nil {
			t.Fatal(err)
		}
		wait, cancel := context.WithTimeout(ctx, time.Minute)
		poll.Until(wait, t, fault.name+": the PSP breaker open", func() bool {
			return metric(st.payment, `breaker_transitions_total{to="open",upstream="psp"}`) > opened
		})
		cancel()
		openAt := time.Now()

		// A checkout placed while the breaker is open ends CANCELLED
		// with the breaker's reason, without waiting for any deadline.
		var fastest time.Duration
		wait, cancel = context.WithTimeout(ctx, time.Minute)
		poll.UntilNil(wait, t, fault.name+": a checkout cancelled by the open breaker", func() error {
			for _, p := range placed.since(openAt) {
				o, err := shop.order(wait, p.id)
				if err == nil && o.Status == "CANCELLED" && o.CancelReason == "charge-payment: payment provider unavailable" {
					fastest = time.Since(p.at)
					return nil
				}
			}
			return fmt.Errorf("none yet")
		})
		cancel()

		healAt := time.Now()
		if err := proxy.RemoveToxic("fault"); err != nil {
			t.Fatal(err)
		}
		wait, cancel = context.WithTimeout(ctx, time.Minute)
		poll.Until(wait, t, fault.name+": the PSP breaker closed again", func() bool {
			return metric(st.payment, `breaker_transitions_total{to="closed",upstream="psp"}`) > closed
		})
		cancel()
		closedAt := time.Now()
		confirmedAfter(closedAt, fault.name+": a checkout confirmed once the breaker closed")
		tripped := false
		for _, line := range st.logs.Lines() {
			tripped = tripped || strings.HasPrefix(line, "payment ") && strings.Contains(line, `"msg":"circuit breaker open"`) &&
				strings.Contains(line, `"upstream":"psp","from":"closed","to":"open","strategy":"`+fault.strategy+`"`)
		}
		if !tripped {
			t.Errorf("%s: payment logged no %s trip", fault.name, fault.strategy)
		}
		t.Logf("%s toxic: the PSP breaker opened %v after it was added; a checkout placed while open was CANCELLED (payment provider unavailable) within %v of its placing (polled); it closed %v after the toxic was removed",
			fault.name, openAt.Sub(faultAt).Round(time.Millisecond), fastest.Round(time.Millisecond), closedAt.Sub(healAt).Round(time.Millisecond))
	}
	stopLoad()
	load.Wait()

	// Every order final, and the provider's records agree with it.
	all := placed.since(time.Time{})
	wait, cancel = context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	reasons := map[string]int{}
	for _, p := range all {
		var o orderView
		poll.UntilNil(wait, t, "order "+p.id+" final", func() error {
			var err error
			if o, err = shop.order(wait, p.id); err == nil && o.Status == "PENDING" {
				err = fmt.Errorf("still PENDING")
			}
			return err
		})
		reasons[o.Status+" "+o.CancelReason]++
		captured, refunded := pspNet(t, st.psp, p.id+":charge") // read once the order is final
		net := captured - refunded
		want := int64(0)
		if o.Status == "CONFIRMED" {
			want = o.Total.Amount
		}
		if net != want {
			t.Errorf("order %s %s: the PSP holds %d (captured %d, refunded %d), want %d", p.id, o.Status, net, captured, refunded, want)
		}
	}
	t.Logf("%d checkouts, all final: %v", len(all), reasons)
}

// placements are the checkouts placed, with when.
type placements struct {
	mu   sync.Mutex
	list []placement
}

type placement struct {
	id string
	at time.Time
}

func (p *placements) add(id string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.list = append(p.list, placement{id, at})
}

// since returns the checkouts placed at or after t.
func (p *placements) since(t time.Time) []placement {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []placement
	for _, pl := range p.list {
		if !pl.at.Before(t) {
			out = append(out, pl)
		}
	}
	return out
}

// metric returns the value of one series from base's /metrics, 0 if absent
// or unreadable.
func metric(base, series string) float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}
