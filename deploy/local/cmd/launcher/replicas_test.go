package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/deploy/local/internal/added"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// TestReplicas runs the launcher with -replicas 2 on PostgreSQL and Consul,
// as bench -replicas does: both replicas of order, inventory and payment
// are ready on their ports and registered in Consul, the gateway sends
// checkouts to both order replicas and product reads to both inventory
// replicas, every replica of the three consumes a share of the topics'
// partitions, every checkout is confirmed, and every process exits 0 on
// SIGINT.
func TestReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the stack with replicas; run without -short")
	}
	dir := worldReadableTempDir(t) // the postgres user must reach the cluster under it
	bin := filepath.Join(dir, "bin")
	services, addedPrograms := addedServices(t)
	buildPrograms(t, bin, append(append([]string{}, programs...), addedPrograms...))
	consulBin := servicetest.Tool(t, "consul", "CONSUL_BIN", "make .run/tools/consul")

	const replicas = 2
	base := freePortRange(t, max(added.MaxOffset(services), replicaPortStep*(replicas-1)+3)+1)
	consulPort := freePortRange(t, 4)
	l := startLauncher(t, stackEnv, filepath.Join(bin, "launcher"), "-mode", "full", "-dir", filepath.Join(dir, "run"),
		"-bin", bin, "-port-base", strconv.Itoa(base), "-broker-port", strconv.Itoa(freePortRange(t, 1)),
		"-consul", consulBin, "-consul-port", strconv.Itoa(consulPort), "-replicas", strconv.Itoa(replicas))
	l.waitForLine(t, "all processes ready", 3*time.Minute)

	// The replicas of each service, by process name, and their base URLs.
	replicated := map[string]int{"order": 1, "inventory": 2, "payment": 3}
	urls := map[string]string{}
	want := map[string][]string{}
	for name, offset := range serviceOffsets(services) {
		if name == "psp" {
			continue
		}
		want[name] = []string{fmt.Sprintf("127.0.0.1:%d", base+offset)}
		if _, ok := replicated[name]; ok {
			want[name] = append(want[name], fmt.Sprintf("127.0.0.1:%d", base+offset+replicaPortStep))
		}
	}
	for name, offset := range replicated {
		for r := 1; r <= replicas; r++ {
			process := name
			if r > 1 {
				process += "-" + strconv.Itoa(r)
			}
			urls[process] = fmt.Sprintf("http://127.0.0.1:%d", base+offset+replicaPortStep*(r-1))
		}
	}
	t.Run("registered", func(t *testing.T) { registeredInConsul(t, consulPort, want) })

	// Checkouts until every replica has had its share: POSTs at both order
	// replicas, reads at both inventory replicas, and messages consumed by
	// every replica (a member of its service's consumer group, owning some
	// of the 12 partitions).
	gateway := fmt.Sprintf("http://127.0.0.1:%d", base)
	c, alice, sku := aliceShopping(t, gateway)
	shared := func(ctx context.Context) error {
		var missing []string
		for process, url := range urls {
			m, err := readSeries(ctx, url, "messaging_consumed_total", "http_server_request_duration_seconds")
			if err != nil {
				return err
			}
			if sum(m, "messaging_consumed_total{") == 0 {
				missing = append(missing, process+" consumed nothing")
			}
			service := strings.Split(process, "-")[0]
			if service == "order" && sum(m, `http_server_request_duration_seconds{http_request_method="POST"`) == 0 {
				missing = append(missing, process+" served no POST")
			}
			if service == "inventory" && sum(m, `http_server_request_duration_seconds{http_request_method="GET"`) == 0 {
				missing = append(missing, process+" served no GET")
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("%s", strings.Join(missing, "; "))
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var orders []string
	poll.UntilNil(ctx, t, "every replica has its share", func() error {
		c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/" + sku})
		resp := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
			Header: map[string]string{"Authorization": "Bearer " + alice, "Idempotency-Key": fmt.Sprintf("replicas-%d", len(orders))},
			Body:   `{"card_number":"` + apitest.GoodCard + `","lines":[{"sku":"` + sku + `","quantity":1}]}`})
		if resp.Status != 202 {
			t.Fatalf("create order = %d %s", resp.Status, resp.Body)
		}
		var o struct{ ID string }
		resp.Decode(t, &o)
		orders = append(orders, o.ID)
		return shared(ctx)
	})
	t.Logf("every replica had its share after %d checkouts", len(orders))
	for _, id := range orders {
		poll.Until(ctx, t, "order "+id+" confirmed", func() bool {
			var o struct{ Status string }
			c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders/" + id, Header: apitest.Bearer(alice)}).Decode(t, &o)
			if o.Status != "PENDING" && o.Status != "CONFIRMED" {
				t.Fatalf("order %s ended %s, want CONFIRMED", id, o.Status)
			}
			return o.Status == "CONFIRMED"
		})
	}

	if err := l.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := l.wait(time.Minute); err != nil {
		t.Fatalf("launcher after SIGINT: %v, want exit 0\n%s", err, l.output())
	}
	for process := range urls {
		if !strings.Contains(l.output(), "launcher  | "+process+" exited with code 0") {
			t.Errorf("%s did not exit with code 0", process)
		}
	}
	if t.Failed() {
		t.Logf("launcher output:\n%s", l.output())
	}
}

// sum adds the values of the series whose id ("name{labels}") starts with
// prefix.
func sum(series map[string]float64, prefix string) float64 {
	total := 0.0
	for id, v := range series {
		if strings.HasPrefix(id, prefix) {
			total += v
		}
	}
	return total
}
