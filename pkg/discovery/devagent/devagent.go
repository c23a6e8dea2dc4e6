// Package devagent says how microshop runs a Consul agent on one machine:
// the command line of a dev-mode agent as DESIGN.md runs it natively. The
// launcher (make run-full), the chaos harness and the tests' consultest all
// start Consul with Args, so the three cannot drift apart.
//
// The agent is one dev-mode server keeping everything in memory, bound to
// 127.0.0.1 only (HTTP API, server and gossip ports; DNS and gRPC off),
// with the UI and the update check off. On SIGTERM it leaves its one-node
// cluster and exits 0 — without leave_on_terminate a server exits 1 — with
// no drain wait: nobody is left to hand over to.
package devagent

import "strconv"

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
