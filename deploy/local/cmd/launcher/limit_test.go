package main

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
	"github.com/microshop/microshop/deploy/local/internal/invariants/invariantstest"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/poll"
)

// gatewayLimit is the gateway's limit rules in this test, put in Consul KV
// while it runs: the default adaptive limiter, and budgets small enough
// that the checkouts below must exceed them — 10 orders a second for the
// whole shop (5 at once), one product list a second.
const gatewayLimit = `{"routes": {
	"POST /api/v1/orders": {"priority": "high", "rate": 10, "burst": 5},
	"GET /api/v1/products": {"priority": "low", "rate": 1, "burst": 1}}}`

// limitOrders is how many checkouts TestOverloadKeepsInvariants places:
// several seconds' worth at the budget above, sized for CI.
const limitOrders = 120

// TestOverloadKeepsInvariants drives the gateway past its limit and checks
// that nothing is lost: checkouts are placed by 16 workers as fast as they
// are answered, far above the budget, and each refused one is retried
// with its Idempotency-Key until accepted (as the chaos harness does).
// Meanwhile health, readiness, metrics and an admin route are asked again
// and again and must always be answered, never shed, while the product
// list is refused with 429 and Retry-After. Afterwards the limiter must
// have refused checkouts, and once the shop is quiet every accepted
// checkout has settled and I1–I5 hold (deploy/local/internal/invariants).
// No timing is asserted.
func TestOverloadKeepsInvariants(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the stack with Consul and PostgreSQL; run without -short")
	}
	st := startStack(t, stackOptions{replicas: 1})
	ctx := t.Context()
	key := liverules.Key("gateway", "limit")
	if _, err := st.consul.Client().KV().Put(&api.KVPair{Key: key, Value: []byte(gatewayLimit)}, nil); err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	poll.Until(wait, t, "the gateway applying the limit rules from consul", func() bool {
		return metric(st.gateway, `liverules_applied_total{key="`+key+`"}`) >= 1
	})
	cancel()

	d, closeDBs, err := invariants.OpenDatabases(ctx, st.dbURLs)
	if err != nil {
		t.Fatal(err)
	}
	defer closeDBs()
	kc := &kafka.Client{Addr: kafka.TCP(st.broker), Timeout: 10 * time.Second}
	c := invariants.NewClient(st.gateway, 10*time.Second)
	shop, err := invariants.Prepare(ctx, c, d, limitOrders)
	if err != nil {
		t.Fatal(err)
	}
	truth := invariants.NewGroundTruth(shop.Catalog)
	if err := invariants.WarmUp(ctx, c, d, shop, 14, time.Minute, truth); err != nil {
		t.Fatal(err)
	}
	admin, err := c.Login(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	var probes sync.WaitGroup
	var mu sync.Mutex
	answers := map[string]map[int]int{} // path → status → answers
	listRejected := 0                   // product lists refused with 429 and Retry-After
	probes.Go(func() {
		client := &http.Client{Timeout: 10 * time.Second}
		for probeCtx.Err() == nil {
			for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/admin/psp/faults", "/api/v1/products"} {
				req, err := http.NewRequestWithContext(probeCtx, http.MethodGet, st.gateway+path, nil)
				if err != nil {
					t.Error(err)
					return
				}
				req.Header.Set("Authorization", "Bearer "+admin.Token)
				resp, err := client.Do(req)
				if err != nil {
					if probeCtx.Err() == nil {
						t.Errorf("GET %s: %v", path, err)
					}
					return
				}
				resp.Body.Close()
				mu.Lock()
				if answers[path] == nil {
					answers[path] = map[int]int{}
				}
				answers[path][resp.StatusCode]++
				if path == "/api/v1/products" && resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "" {
					listRejected++
				}
				mu.Unlock()
			}
		}
	})
	res := invariants.Drive(ctx, c, shop, invariants.Load{Orders: limitOrders, Concurrency: 16, Seed: 14})
	stopProbes()
	probes.Wait()
	truth.Record(res)

	for _, err := range res.Failed {
		t.Errorf("never accepted: %v", err)
	}
	rejected := metric(st.gateway, `limiter_rejected_total{priority="high",reason="route"}`)
	t.Logf("%d checkouts accepted after %d retries; the gateway refused %.0f of them (429); probes: %v", len(res.IDs), res.Retries, rejected, answers)
	if rejected == 0 || res.Retries == 0 {
		t.Errorf("no checkout was refused (limiter_rejected_total %v, retries %d): the test did not drive the gateway past its limit", rejected, res.Retries)
	}
	if listRejected == 0 {
		t.Error("no product list was refused with 429 and Retry-After while the budget was exceeded")
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/admin/psp/faults"} {
		for status, n := range answers[path] {
			if status != http.StatusOK {
				t.Errorf("GET %s answered %d %d times: health, readiness, metrics and admin must never be shed", path, n, status)
			}
		}
		if answers[path][http.StatusOK] == 0 {
			t.Errorf("GET %s was never answered 200", path)
		}
	}

	invariantstest.Settle(t, invariants.Sources{Databases: d, PSP: st.psp, Kafka: kc}, truth, nil)
}
