// Package toxitest runs Toxiproxy inside the test process, to put real
// network faults — latency, connection resets, timeouts, cut bandwidth —
// between code under test and the server it calls.
//
// Toxiproxy is a TCP proxy whose behaviour is changed through an HTTP API:
// each proxy listens on its own address and forwards to an upstream, and
// "toxics" added to a proxy alter the bytes flowing through it (latency
// delays them, reset_peer answers with a TCP RST, timeout swallows them).
// Start serves that API from the test process (github.com/Shopify/toxiproxy/v2
// used as a library, no binary to build or install) on a loopback port and
// returns Toxiproxy's own Go client of it, so a test injects faults exactly
// as it would against a Toxiproxy server in compose.
//
// Toxic types and attributes: latency {latency, jitter} (ms), reset_peer
// {timeout} (ms), timeout {timeout} (ms), bandwidth {rate} (KB/s),
// slow_close {delay}, limit_data {bytes}; on the "upstream" (client to
// server) or "downstream" (server to client) stream.
package toxitest

import (
	"net/http/httptest"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Toxiproxy is a Toxiproxy server running in the test process.
type Toxiproxy struct {
	// URL is the base URL of its HTTP API, "http://127.0.0.1:PORT".
	URL string
	// Client is a client of the API.
	Client *toxiclient.Client
}

// Start serves a Toxiproxy API on a free port of 127.0.0.1 until the test
// ends; then every proxy it made is stopped.
func Start(t testing.TB) *Toxiproxy {
	t.Helper()
	// The proxies' metrics must be set: the server records connections
	// on them. Its registry is its own, not the default one.
	metrics := toxiproxy.NewMetricsContainer(prometheus.NewRegistry())
	metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	server := toxiproxy.NewServer(metrics, zerolog.Nop())
	api := httptest.NewServer(server.Routes())
	t.Cleanup(func() {
		api.Close()
		if err := server.Collection.Clear(); err != nil {
			t.Errorf("stop toxiproxy proxies: %v", err)
		}
	})
	return &Toxiproxy{URL: api.URL, Client: toxiclient.NewClient(api.URL)}
}

// Proxy creates a proxy named name that listens on a free port of
// 127.0.0.1 and forwards to upstream ("host:port"). Its Listen field holds
// the address to dial.
func (tp *Toxiproxy) Proxy(t testing.TB, name, upstream string) *toxiclient.Proxy {
	t.Helper()
	p, err := tp.Client.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		t.Fatalf("create toxiproxy proxy %s to %s: %v", name, upstream, err)
	}
	return p
}
