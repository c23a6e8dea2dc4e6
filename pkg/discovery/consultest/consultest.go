// Package consultest gives tests a real Consul agent: Start runs the binary
// built by `make slow-tools` (.run/tools/consul) as a dev-mode agent of its
// own on free loopback ports, waits until it has elected itself leader, and
// stops it when the test ends.
//
// The agent is started the way the launcher starts it (package devagent):
// -dev (one in-memory server, nothing written to disk), bound to 127.0.0.1
// only, with the UI, the update check, DNS and gRPC off. Each test gets its own agent,
// so tests may run in parallel; an agent takes about a second to elect
// itself.
//
// A test that cannot find the binary skips on a developer machine and fails
// under CI (the environment variable CI is non-empty), so a CI run never
// passes by skipping its Consul tests.
package consultest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/discovery/devagent"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
)

// startTimeout bounds how long Start waits for the agent to lead.
const startTimeout = time.Minute

// stopTimeout bounds how long Stop waits for the agent to leave after
// SIGTERM before it kills it.
const stopTimeout = 10 * time.Second

// Consul is a running dev-mode agent. Its methods must be called from the
// test's goroutine.
type Consul struct {
	// Addr is the agent's HTTP API address, "127.0.0.1:PORT": the value of
	// CONSUL_HTTP_ADDR for code under test.
	Addr string

	t     testing.TB
	bin   string
	ports devagent.Ports
	node  string
	cmd   *exec.Cmd
	done  chan error // receives cmd.Wait's result
	logs  *logWriter

	clientOnce sync.Once
	client     *api.Client
}

// Start runs a Consul agent for the test, waits until it is the leader of its
// one-node cluster, and stops it in t.Cleanup. Without the binary it skips
// the test, or fails it under CI.
func Start(t testing.TB) *Consul {
	t.Helper()
	bin := servicetest.Tool(t, "consul", "CONSUL_BIN", "make .run/tools/consul")
	c := &Consul{t: t, bin: bin, logs: &logWriter{}}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("consul output:\n%s", c.logs.String())
		}
	})
	// A port found free can be taken before the agent binds it — by the
	// outgoing connection of a test running beside this one, the ports
	// being in the kernel's ephemeral range — and the agent then exits at
	// once. That is retried on other ports; any other failure is not.
	for attempt := 1; ; attempt++ {
		c.ports = freePorts(t)
		c.Addr = "127.0.0.1:" + strconv.Itoa(c.ports.HTTP)
		c.node = fmt.Sprintf("test-%d", c.ports.HTTP)
		err := c.start()
		if err == nil {
			return c
		}
		if attempt == maxStartAttempts || !strings.Contains(c.logs.String(), "address already in use") {
			t.Fatalf("%v\n%s", err, c.logs.String())
		}
		t.Logf("consul could not bind its ports (attempt %d of %d); trying others", attempt, maxStartAttempts)
		c.logs.reset()
	}
}

// maxStartAttempts bounds Start's tries on other ports.
const maxStartAttempts = 3

// Client returns the API client of the agent, one per agent: every client
// has its own connection pool, so a test that made one per poll would pile
// up idle connections until the agent refuses more from 127.0.0.1 (its
// http_max_conns_per_client, 200: "429 Your IP is issuing too many
// concurrent connections", seen in CI).
func (c *Consul) Client() *api.Client {
	c.t.Helper()
	var err error
	c.clientOnce.Do(func() { c.client, err = api.NewClient(c.Config()) })
	if err != nil {
		c.t.Fatalf("consul client: %v", err)
	}
	return c.client
}

// Config returns the client configuration of the agent: its address and
// nothing read from the environment, so a CONSUL_HTTP_ADDR of the developer's
// shell cannot point a test at another agent.
func (c *Consul) Config() *api.Config {
	return &api.Config{Address: c.Addr, Scheme: "http"}
}

// Stop stops the agent (SIGTERM, then SIGKILL after a grace period) and
// waits for it to exit. Requests to Addr are refused until Restart. Stopping
// a stopped agent does nothing.
func (c *Consul) Stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
}

// Restart starts the agent again on the same ports after Stop, as an
// operator restarting Consul would, and waits until it leads. A dev agent
// keeps nothing: registrations and KV entries made before are gone, and its
// Raft indexes start again from the beginning.
func (c *Consul) Restart() {
	c.t.Helper()
	c.Stop()
	if err := c.start(); err != nil {
		c.t.Fatalf("%v\n%s", err, c.logs.String())
	}
}

// start runs the agent and polls until it leads its cluster. It returns an
// error if the agent exited meanwhile.
func (c *Consul) start() error {
	c.t.Helper()
	cmd := exec.Command(c.bin, devagent.Args(c.node, c.ports)...)
	cmd.Stdout, cmd.Stderr = c.logs, c.logs
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start consul: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	c.cmd, c.done = cmd, done

	client, err := api.NewClient(c.Config())
	if err != nil {
		c.t.Fatalf("consul client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var exited error
	poll.UntilNil(ctx, c.t, "consul at "+c.Addr+" to elect a leader", func() error {
		if exited != nil {
			return nil
		}
		select {
		case err := <-done:
			c.cmd = nil
			exited = fmt.Errorf("consul exited while starting: %v", err)
			return nil
		default:
		}
		leader, err := client.Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		// The agent answers catalog queries only once it has
		// registered its own node; wait for that too.
		node, _, err := client.Catalog().Node(c.node, nil)
		if err != nil {
			return err
		}
		if node == nil {
			return errors.New("own node not in the catalog yet")
		}
		return nil
	})
	return exited
}

// freePorts returns four ports of 127.0.0.1 that were free a moment ago.
func freePorts(t testing.TB) devagent.Ports {
	t.Helper()
	var p [4]int
	var listeners []net.Listener
	for i := range p {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		listeners = append(listeners, l)
		p[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range listeners {
		l.Close()
	}
	return devagent.Ports{HTTP: p[0], Server: p[1], SerfLAN: p[2], SerfWAN: p[3]}
}

// logWriter keeps the agent's output, to show it if the test failed.
type logWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *logWriter) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Reset()
}

func (w *logWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
