package process_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/discovery/consultest"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/process"
	"github.com/microshop/microshop/pkg/servicetest"
)

// running is a Process started by startWithConsul.
type running struct {
	p    *process.Process
	addr string
	stop context.CancelFunc // ends Run's context
	wait func() error       // waits for Run and returns its result
}

// startWithConsul starts a process "hello" whose CONSUL_HTTP_ADDR is
// consulAddr, lets setup add routes, and runs it until the test ends.
func startWithConsul(t *testing.T, consulAddr string, log *slog.Logger, setup func(p *process.Process)) *running {
	t.Helper()
	return startWithVars(t, map[string]string{"P_HTTP_ADDR": servicetest.FreeAddr(t), "CONSUL_HTTP_ADDR": consulAddr}, log, setup)
}

// startWithVars is startWithConsul with the variables of vars.
func startWithVars(t *testing.T, vars map[string]string, log *slog.Logger, setup func(p *process.Process)) *running {
	t.Helper()
	getenv := func(k string) string { return vars[k] }
	cfg := process.ReadConfig(config.New(getenv, "P_"), "")
	p, err := process.Start(t.Context(), "hello", cfg, getenv, log)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	r := &running{p: p, addr: cfg.HTTP.Addr, stop: cancel, wait: sync.OnceValue(func() error { return <-done })}
	t.Cleanup(func() {
		cancel()
		if err := r.wait(); err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// passing returns the instances of service hello whose checks all pass.
func passing(client *api.Client) ([]*api.ServiceEntry, error) {
	entries, _, err := client.Health().Service("hello", "", true, nil)
	return entries, err
}

// TestRegisteredInConsul checks, against a real Consul agent, that a process
// is in the catalog while it serves — its address, a version tag, a
// passing check of /readyz — and that on the stop signal it leaves the
// catalog before it drains: while a request is still in flight, Consul no
// longer offers it, and its log says so before the drain begins.
func TestRegisteredInConsul(t *testing.T) {
	consul := consultest.Start(t)
	client := consul.Client()
	logs := &logtest.Buffer{}
	inFlight, release := make(chan struct{}), make(chan struct{})
	r := startWithConsul(t, consul.Addr, logging.New(logs, "hello", slog.LevelInfo), func(p *process.Process) {
		p.Router.GET("/slow", func(c *gin.Context) {
			close(inFlight)
			<-release
			c.String(http.StatusOK, "slow")
		})
	})
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	var entry *api.ServiceEntry
	poll.UntilNil(ctx, t, "hello passing in consul", func() error {
		entries, err := passing(client)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("%d passing instances", len(entries))
		}
		entry = entries[0]
		return nil
	})
	host, port, _ := net.SplitHostPort(r.addr)
	if got := net.JoinHostPort(entry.Service.Address, strconv.Itoa(entry.Service.Port)); got != net.JoinHostPort(host, port) {
		t.Errorf("registered address %s, want the listener's %s", got, r.addr)
	}
	if !slices.ContainsFunc(entry.Service.Tags, func(tag string) bool { return strings.HasPrefix(tag, "version=") && len(tag) > len("version=") }) {
		t.Errorf("tags %q, want a version tag", entry.Service.Tags)
	}
	if !strings.HasPrefix(entry.Service.ID, "hello-") {
		t.Errorf("instance id %q, want one of service hello", entry.Service.ID)
	}
	var checked bool
	for _, c := range entry.Checks {
		if c.ServiceID == entry.Service.ID && c.Type == "http" && c.Status == api.HealthPassing {
			checked = true
		}
	}
	if !checked {
		t.Errorf("checks %+v, want a passing HTTP check of the instance", entry.Checks)
	}

	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + r.addr + "/slow")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		slow <- err
	}()
	<-inFlight
	r.stop()
	poll.UntilNil(ctx, t, "hello gone from the catalog while a request is in flight", func() error {
		services, _, err := client.Catalog().Service("hello", "", nil)
		if err != nil {
			return err
		}
		if len(services) != 0 {
			return fmt.Errorf("%d instances in the catalog", len(services))
		}
		return nil
	})
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("the request in flight at the stop signal: %v, want it served", err)
	}
	if err := r.wait(); err != nil {
		t.Errorf("Run: %v", err)
	}

	var order []string
	for _, line := range logs.Lines() {
		for _, msg := range []string{"registered in consul", "deregistered from consul", "shutting down: draining in-flight requests"} {
			if strings.Contains(line, `"msg":"`+msg+`"`) {
				order = append(order, msg)
			}
		}
	}
	want := []string{"registered in consul", "deregistered from consul", "shutting down: draining in-flight requests"}
	if !slices.Equal(order, want) {
		t.Errorf("log messages in order %q, want %q", order, want)
	}
}

// TestRegisteredUnderAdvertiseAddr checks that P_ADVERTISE_ADDR, not the
// listen host, is the address registered, and that Consul's check of it
// passes.
func TestRegisteredUnderAdvertiseAddr(t *testing.T) {
	consul := consultest.Start(t)
	addr := servicetest.FreeAddr(t)
	vars := map[string]string{"P_HTTP_ADDR": addr, "P_ADVERTISE_ADDR": "localhost", "CONSUL_HTTP_ADDR": consul.Addr}
	startWithVars(t, vars, logging.New(io.Discard, "hello", slog.LevelInfo), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, port, _ := net.SplitHostPort(addr)
	client := consul.Client()
	poll.UntilNil(ctx, t, "hello passing in consul under localhost", func() error {
		entries, err := passing(client)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("%d passing instances", len(entries))
		}
		if got, want := net.JoinHostPort(entries[0].Service.Address, strconv.Itoa(entries[0].Service.Port)), net.JoinHostPort("localhost", port); got != want {
			return fmt.Errorf("registered address %s, want %s", got, want)
		}
		return nil
	})
}

// TestRegistersOnceConsulAnswers checks that a process started while its
// Consul agent is down serves anyway and registers once the agent is back.
func TestRegistersOnceConsulAnswers(t *testing.T) {
	consul := consultest.Start(t)
	consul.Stop()
	r := startWithConsul(t, consul.Addr, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	poll.UntilNil(ctx, t, "the process serving without consul", func() error {
		_, err := get("http://" + r.addr + "/healthz")
		return err
	})
	consul.Restart()
	client := consul.Client()
	poll.UntilNil(ctx, t, "hello passing in consul once it is back", func() error {
		entries, err := passing(client)
		if err == nil && len(entries) != 1 {
			err = fmt.Errorf("%d passing instances", len(entries))
		}
		return err
	})
}

// TestRegistersAgainAfterConsulRestart checks that a process registers
// again when its agent restarted and forgot it (a dev agent keeps no
// state): it is back in the catalog, passing, without a restart of its own.
func TestRegistersAgainAfterConsulRestart(t *testing.T) {
	consul := consultest.Start(t)
	logs := &logtest.Buffer{}
	startWithConsul(t, consul.Addr, logging.New(logs, "hello", slog.LevelInfo), nil)
	client := consul.Client()
	onePassing := func() error {
		entries, err := passing(client)
		if err == nil && len(entries) != 1 {
			err = fmt.Errorf("%d passing instances", len(entries))
		}
		return err
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	poll.UntilNil(ctx, t, "hello passing in consul", onePassing)
	consul.Stop()
	consul.Restart()
	if services, _, err := client.Catalog().Service("hello", "", nil); err != nil || len(services) != 0 {
		t.Fatalf("the restarted agent's catalog: %d instances of hello, %v; want it to have forgotten the instance", len(services), err)
	}
	restarted := time.Now()
	poll.UntilNil(ctx, t, "hello passing in consul again", onePassing)
	t.Logf("registered and passing again %v after the agent restarted", time.Since(restarted).Round(time.Millisecond))
	if !slices.ContainsFunc(logs.Lines(), func(l string) bool { return strings.Contains(l, `"msg":"consul forgot the instance`) }) {
		t.Errorf("no log line says the instance was registered again")
	}
}

// TestBreakerRulesLive checks that with Consul, the breakers' rules are the
// KV document microshop/hello/breaker, followed while the process runs, and
// without Consul they are the rules given. (pkg/liverules tests that an
// invalid document is rejected.)
func TestBreakerRulesLive(t *testing.T) {
	defaults := map[string]breaker.Rules{"up": {ErrorRatio: 0.5}}
	t.Run("consul", func(t *testing.T) {
		consul := consultest.Start(t)
		kv := consul.Client().KV()
		put := func(doc string) {
			t.Helper()
			if _, err := kv.Put(&api.KVPair{Key: liverules.Key("hello", "breaker"), Value: []byte(doc)}, nil); err != nil {
				t.Fatal(err)
			}
		}
		put(`{"up": {"errorRatio": 0.25}}`)
		var set *breaker.Set
		startWithConsul(t, consul.Addr, slog.New(slog.DiscardHandler), func(p *process.Process) {
			var err error
			if set, err = p.Breakers(t.Context(), defaults); err != nil {
				t.Fatal(err)
			}
		})
		ratio := func() float64 { return set.Rules()["up"].ErrorRatio }
		if got := ratio(); got != 0.25 {
			t.Errorf("error ratio at start = %v, want 0.25 from consul", got)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		put(`{"up": {"errorRatio": 0.75}}`)
		poll.Until(ctx, t, "the changed ratio in force", func() bool { return ratio() == 0.75 })
	})
	t.Run("embedded", func(t *testing.T) {
		getenv := func(string) string { return "" }
		p, err := process.Start(t.Context(), "hello", process.ReadConfig(config.New(getenv, "P_"), ""), getenv, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		if p.Consul != nil {
			t.Fatal("a Consul client without CONSUL_HTTP_ADDR")
		}
		set, err := p.Breakers(t.Context(), defaults)
		if err != nil {
			t.Fatal(err)
		}
		if got := set.Rules()["up"].ErrorRatio; got != 0.5 {
			t.Errorf("error ratio = %v, want the given 0.5", got)
		}
	})
}
