package discovery_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/discovery"
	"github.com/microshop/microshop/pkg/discovery/consultest"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
)

// testTimeout bounds every wait of a test; Consul's checks run every second.
const testTimeout = 30 * time.Second

// startAgent starts a Consul agent for t and returns a context that ends
// after testTimeout and a client of the agent.
func startAgent(t *testing.T) (context.Context, *api.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx, consultest.Start(t).Client()
}

// replica is a test HTTP server standing for one instance of a service: its
// /readyz answers 200 or 503 as the test says.
type replica struct {
	host  string
	port  int
	ready atomic.Bool
}

func newReplica(t *testing.T) *replica {
	t.Helper()
	r := &replica{}
	r.ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/readyz" && !r.ready.Load() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	host, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r.host = host
	r.port, _ = strconv.Atoi(port)
	return r
}

func (r *replica) addr() string { return net.JoinHostPort(r.host, strconv.Itoa(r.port)) }

// register registers rep as an instance of service.
func register(ctx context.Context, t *testing.T, client *api.Client, service string, rep *replica, version string) *discovery.Registrar {
	t.Helper()
	reg, err := discovery.NewRegistrar(client, discovery.Registration{
		Service: service, Address: rep.host, Port: rep.port, Version: version,
	})
	if err != nil {
		t.Fatalf("NewRegistrar: %v", err)
	}
	if err := reg.Register(ctx); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return reg
}

// runResolver runs a resolver of service until the test ends.
func runResolver(t *testing.T, client *api.Client, service string, opts discovery.ResolverOptions) *discovery.ConsulResolver {
	t.Helper()
	r := discovery.NewConsulResolver(client, service, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("resolver Run: %v", err)
		}
	})
	return r
}

// waitInstances polls until r answers exactly the instances of ids.
func waitInstances(ctx context.Context, t *testing.T, r discovery.Resolver, what string, ids ...string) {
	t.Helper()
	want := append([]string{}, ids...)
	slices.Sort(want)
	poll.UntilNil(ctx, t, what, func() error {
		got := idsOf(r.Instances())
		if diff := cmp.Diff(want, got); diff != "" {
			return errors.New("instances (-want +got):\n" + diff)
		}
		return nil
	})
}

// TestResolverFollowsHealth registers two replicas and follows them as their
// readiness changes and as they deregister.
func TestResolverFollowsHealth(t *testing.T) {
	ctx, client := startAgent(t)
	a, b := newReplica(t), newReplica(t)
	regA := register(ctx, t, client, "order", a, "1.4.0")
	regB := register(ctx, t, client, "order", b, "1.5.0")
	register(ctx, t, client, "inventory", newReplica(t), "") // another service, never in the answer

	r := runResolver(t, client, "order", discovery.ResolverOptions{})
	select {
	case <-r.Synced():
	case <-ctx.Done():
		t.Fatal("resolver never synced")
	}
	waitInstances(ctx, t, r, "both replicas healthy", regA.ID(), regB.ID())
	want := []discovery.Instance{
		{ID: regA.ID(), Addr: a.addr(), Version: "1.4.0"},
		{ID: regB.ID(), Addr: b.addr(), Version: "1.5.0"},
	}
	slices.SortFunc(want, func(x, y discovery.Instance) int { return strings.Compare(x.ID, y.ID) })
	if diff := cmp.Diff(want, r.Instances()); diff != "" {
		t.Errorf("instances mismatch (-want +got):\n%s", diff)
	}

	a.ready.Store(false)
	waitInstances(ctx, t, r, "a gone once its readiness fails", regB.ID())
	a.ready.Store(true)
	waitInstances(ctx, t, r, "a back once ready again", regA.ID(), regB.ID())

	start := time.Now()
	if err := regB.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	waitInstances(ctx, t, r, "b gone once deregistered", regA.ID())
	t.Logf("a deregistered instance left the resolver's answer %v after Deregister returned", time.Since(start))
	if err := regB.Deregister(ctx); err != nil {
		t.Errorf("second Deregister: %v, want nil", err)
	}
}

// TestRegistration checks what the agent holds for a registered instance:
// the check on /readyz, the deregistration timeout, the version tag, and a
// new unique id per registrar.
func TestRegistration(t *testing.T) {
	ctx, client := startAgent(t)
	rep := newReplica(t)
	reg := register(ctx, t, client, "payment", rep, "2.0.1")

	again, err := discovery.NewRegistrar(client, discovery.Registration{Service: "payment", Address: rep.host, Port: rep.port})
	if err != nil {
		t.Fatal(err)
	}
	if again.ID() == reg.ID() {
		t.Errorf("two registrars of one address share the id %q; want one per process", reg.ID())
	}
	if !strings.HasPrefix(reg.ID(), "payment-127-0-0-1-"+strconv.Itoa(rep.port)+"-") {
		t.Errorf("id %q does not start with service, address and port", reg.ID())
	}

	svc, _, err := client.Agent().Service(reg.ID(), nil)
	if err != nil {
		t.Fatalf("agent service: %v", err)
	}
	if diff := cmp.Diff([]string{"version=2.0.1"}, svc.Tags); diff != "" {
		t.Errorf("tags mismatch (-want +got):\n%s", diff)
	}
	poll.UntilNil(ctx, t, "the readiness check passing", func() error {
		checks, _, err := client.Health().Checks("payment", nil)
		if err != nil {
			return err
		}
		if len(checks) != 1 || checks[0].Status != api.HealthPassing {
			return errors.New("checks: " + checksString(checks))
		}
		// The output names the URL the agent requested.
		if want := "HTTP GET http://" + rep.addr() + "/readyz: 200 OK"; !strings.Contains(checks[0].Output, want) {
			return errors.New("output " + checks[0].Output + " lacks " + want)
		}
		return nil
	})
}

// TestRegisterRemovesPredecessors registers an instance and leaves it, as
// a SIGKILLed process does, then registers its successor on the same
// address and port: the agent keeps the successor only. An instance of the
// service on another port stays.
func TestRegisterRemovesPredecessors(t *testing.T) {
	ctx, client := startAgent(t)
	rep, other := newReplica(t), newReplica(t)
	killed := register(ctx, t, client, "payment", rep, "")
	neighbour := register(ctx, t, client, "payment", other, "")
	successor := register(ctx, t, client, "payment", rep, "")

	services, err := client.Agent().ServicesWithFilter(`Service == "payment"`)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(services))
	want := slices.Sorted(slices.Values([]string{successor.ID(), neighbour.ID()}))
	if !slices.Equal(got, want) {
		t.Errorf("instances of payment = %v, want the successor and the neighbour %v (not the killed %s)", got, want, killed.ID())
	}
	// Registering again, as after an agent restart, keeps it.
	if err := successor.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := successor.Registered(ctx); !ok || err != nil {
		t.Errorf("successor registered again = %v, %v; want true", ok, err)
	}
}

// TestRegistrationSent checks the registration the agent receives, for the
// parts of the check the agent does not report back (its interval, timeout
// and DeregisterCriticalServiceAfter): a stand-in agent records it.
func TestRegistrationSent(t *testing.T) {
	var got api.AgentServiceRegistration
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/v1/agent/services" {
			w.Write([]byte("{}")) // Register's look for predecessors: none
			return
		}
		if r.Method != http.MethodPut || r.URL.Path != "/v1/agent/service/register" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer agent.Close()
	client, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(agent.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		reg  discovery.Registration
		want api.AgentServiceCheck
	}{
		{
			name: "defaults",
			reg:  discovery.Registration{Service: "order", ID: "order-1", Address: "127.0.0.1", Port: 8081},
			want: api.AgentServiceCheck{
				Name: "order readiness", HTTP: "http://127.0.0.1:8081/readyz", Method: "GET",
				Interval: "1s", Timeout: "3s", DeregisterCriticalServiceAfter: "1m0s", FailuresBeforeCritical: 3,
			},
		},
		{
			name: "set",
			reg: discovery.Registration{
				Service: "order", ID: "order-1", Address: "::1", Port: 8081, CheckPath: "health",
				CheckInterval: 2 * time.Second, CheckTimeout: 500 * time.Millisecond, DeregisterAfter: 5 * time.Minute,
			},
			want: api.AgentServiceCheck{
				Name: "order readiness", HTTP: "http://[::1]:8081/health", Method: "GET",
				Interval: "2s", Timeout: "500ms", DeregisterCriticalServiceAfter: "5m0s", FailuresBeforeCritical: 3,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := discovery.NewRegistrar(client, tt.reg)
			if err != nil {
				t.Fatal(err)
			}
			if err := reg.Register(t.Context()); err != nil {
				t.Fatalf("Register: %v", err)
			}
			if got.Check == nil {
				t.Fatal("registration without a check")
			}
			if diff := cmp.Diff(tt.want, *got.Check); diff != "" {
				t.Errorf("check mismatch (-want +got):\n%s", diff)
			}
			if got.ID != "order-1" || got.Name != "order" || got.Address != tt.reg.Address || got.Port != 8081 {
				t.Errorf("registered %s %s at %s:%d, want order-1 order at %s:8081", got.ID, got.Name, got.Address, got.Port, tt.reg.Address)
			}
		})
	}
}

func TestNewRegistrarRefuses(t *testing.T) {
	client, err := api.NewClient(&api.Config{Address: "127.0.0.1:1"}) // never dialled
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		reg  discovery.Registration
		want []string // parts of the error
	}{
		{name: "empty", reg: discovery.Registration{}, want: []string{"service name", "address", "port 0"}},
		{name: "port out of range", reg: discovery.Registration{Service: "order", Address: "127.0.0.1", Port: 70000}, want: []string{"port 70000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := discovery.NewRegistrar(client, tt.reg)
			if err == nil {
				t.Fatal("NewRegistrar succeeded, want an error")
			}
			for _, part := range tt.want {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not mention %q", err, part)
				}
			}
		})
	}
}

// TestResolverOutlivesConsul stops Consul under a resolver: it keeps its last
// answer while queries fail, and follows the restarted agent (whose indexes
// start again from the beginning) once it is back.
func TestResolverOutlivesConsul(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*testTimeout)
	defer cancel()
	consul := consultest.Start(t)
	client := consul.Client()
	rep := newReplica(t)
	reg := register(ctx, t, client, "inventory", rep, "")
	var logs logtest.Buffer
	r := runResolver(t, client, "inventory", discovery.ResolverOptions{
		Logger:     slog.New(slog.NewTextHandler(&logs, nil)),
		MaxBackoff: 500 * time.Millisecond,
	})
	waitInstances(ctx, t, r, "the replica", reg.ID())

	consul.Stop()
	poll.Until(ctx, t, "a failed query logged", func() bool {
		return strings.Contains(logs.String(), "consul query failed")
	})
	if diff := cmp.Diff([]string{reg.ID()}, idsOf(r.Instances())); diff != "" {
		t.Errorf("instances while consul is down (-want +got):\n%s", diff)
	}

	consul.Restart() // empty: the dev agent forgot the registration
	waitInstances(ctx, t, r, "no instance once consul is back empty")
	if err := reg.Register(ctx); err != nil { // what a registrar's owner does again
		t.Fatalf("register again: %v", err)
	}
	waitInstances(ctx, t, r, "the replica registered again", reg.ID())
}

func TestStaticResolver(t *testing.T) {
	r := discovery.NewStaticResolver("127.0.0.1:8082", "127.0.0.1:8081")
	want := []discovery.Instance{
		{ID: "127.0.0.1:8081", Addr: "127.0.0.1:8081"},
		{ID: "127.0.0.1:8082", Addr: "127.0.0.1:8082"},
	}
	if diff := cmp.Diff(want, r.Instances()); diff != "" {
		t.Errorf("instances mismatch (-want +got):\n%s", diff)
	}
}

// TestBalancerSpreadsByInFlight holds requests open on one instance: the
// balancer sends the following ones to the others.
func TestBalancerSpreadsByInFlight(t *testing.T) {
	b := discovery.NewBalancer("order", discovery.NewStaticResolver("a:1", "b:1"))
	slow, slowDone, err := b.Pick()
	if err != nil {
		t.Fatal(err)
	}
	// With two instances both are always drawn, so every next pick goes
	// to the one with fewer requests in flight.
	for range 10 {
		got, done, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		if got.ID == slow.ID {
			t.Fatalf("picked %s, which has a request in flight, over an idle instance", got.ID)
		}
		done()
	}
	slowDone()
}

func idsOf(list []discovery.Instance) []string {
	ids := make([]string, len(list))
	for i, in := range list {
		ids[i] = in.ID
	}
	return ids
}

func checksString(checks api.HealthChecks) string {
	var parts []string
	for _, c := range checks {
		parts = append(parts, c.CheckID+"="+c.Status+" "+c.Output)
	}
	return strings.Join(parts, "; ")
}
