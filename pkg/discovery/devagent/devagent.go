// Package devagent says how microshop runs a Consul agent on one machine:
// the command line of a dev-mode agent as DESIGN.md runs it natively. The
// launcher (make run-full), the chaos harness and the tests' consultest all
// start Consul with Args, so the three cannot drift apart; the chaos
// harness and bench wait with WaitPassing until the agent holds every
// replica of the stack they started.
//
// The agent is one dev-mode server keeping everything in memory, bound to
// 127.0.0.1 only (HTTP API, server and gossip ports; DNS and gRPC off),
// with the UI and the update check off. On SIGTERM it leaves its one-node
// cluster and exits 0 — without leave_on_terminate a server exits 1 — with
// no drain wait: nobody is left to hand over to.
package devagent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// Ports are the agent's listening ports on 127.0.0.1.
type Ports struct {
	HTTP    int // the HTTP API: CONSUL_HTTP_ADDR
	Server  int // server RPC
	SerfLAN int // LAN gossip
	SerfWAN int // WAN gossip
}

// Consecutive returns the ports from http on: the HTTP API on http, the
// server and the LAN and WAN gossip on the next three.
func Consecutive(http int) Ports {
	return Ports{HTTP: http, Server: http + 1, SerfLAN: http + 2, SerfWAN: http + 3}
}

// Args returns the arguments of the consul binary that run a dev-mode agent
// named node on ports.
func Args(node string, p Ports) []string {
	port := strconv.Itoa
	return []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", node,
		"-http-port", port(p.HTTP), "-server-port", port(p.Server),
		"-serf-lan-port", port(p.SerfLAN), "-serf-wan-port", port(p.SerfWAN),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-log-level", "warn",
		"-hcl", "ui_config { enabled = false }", "-hcl", "disable_update_check = true",
		"-hcl", "leave_on_terminate = true", "-hcl", `performance { leave_drain_time = "0s" }`}
}

// WaitPassing asks the agent whose HTTP API is at addr (host:port), every
// 100 ms, until each service of want has exactly want[service] instances
// with their checks passing, or ctx ends: a process that answers its own
// readiness check is not yet one the gateway can find. The error says the
// last shortfall the agent answered.
func WaitPassing(ctx context.Context, addr string, want map[string]int) error {
	client, err := api.NewClient(&api.Config{Address: addr, Scheme: "http"})
	if err != nil {
		return err
	}
	services := slices.Sorted(maps.Keys(want))
	last := "no answer from the agent"
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		short, err := shortfall(ctx, client, services, want)
		switch {
		case err == nil && short == "":
			return nil
		case err == nil:
			last = short
		case ctx.Err() == nil: // not an answer cut short by ctx
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", last, ctx.Err())
		case <-tick.C:
		}
	}
}

// shortfall returns the first service of services with other than want of
// it passing, described, or "" when none.
func shortfall(ctx context.Context, client *api.Client, services []string, want map[string]int) (string, error) {
	for _, s := range services {
		entries, _, err := client.Health().Service(s, "", true, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil {
			return "", fmt.Errorf("ask Consul for %s: %w", s, err)
		}
		if len(entries) != want[s] {
			return fmt.Sprintf("%s: %d passing instances in Consul, want %d", s, len(entries), want[s]), nil
		}
	}
	return "", nil
}
