package discovery

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Defaults of a Registration's zero fields.
const (
	// DefaultCheckPath is the path Consul's HTTP check requests: the
	// readiness endpoint every service serves (pkg/health).
	DefaultCheckPath = "/readyz"
	// DefaultCheckInterval is how often the agent runs the check. One second
	// is the agent's floor: a shorter interval is raised to it.
	DefaultCheckInterval = time.Second
	// DefaultCheckTimeout bounds one check request: above the 2 s a
	// service's /readyz gives its own dependency checks (pkg/process), so
	// that a readiness answer that is slow, not negative, is not a failure.
	DefaultCheckTimeout = 3 * time.Second
	// DefaultFailuresBeforeCritical is how many checks in a row must fail
	// before a passing instance turns critical and leaves the resolvers:
	// one slow answer on a loaded machine must not take the only instance
	// of a service out (the full stack's test, run beside others in CI,
	// saw 503 "no instance" without it). A stopping instance deregisters
	// itself at once; a killed one leaves after about this many seconds,
	// and the gateway's retries cover the gap.
	DefaultFailuresBeforeCritical = 3
	// DefaultDeregisterAfter is how long an instance may stay critical before
	// Consul removes it from the catalog. One minute is the agent's floor,
	// and the agent reaps every 30 s, so removal takes 1–1.5 min.
	DefaultDeregisterAfter = time.Minute
)

// versionTag prefixes the tag carrying an instance's version.
const versionTag = "version="

// Registration describes one process to register. Service, Address and Port
// are required; every other zero field takes the default named on it.
type Registration struct {
	// Service is the service name callers resolve, e.g. "order".
	Service string
	// ID is the unique instance id. Empty: generated from the service, the
	// address, the port and a random suffix, so that a restarted process
	// never takes over the entry (and the check state) of its predecessor;
	// Register removes that entry instead.
	ID string
	// Address is the host or IP other processes dial to reach this one, e.g.
	// "127.0.0.1" natively or the container's name in compose.
	Address string
	// Port is the TCP port of the HTTP server.
	Port int
	// Version is the build's version, registered as the tag
	// "version=<Version>" and returned in [Instance.Version]. Empty: no tag.
	Version string
	// CheckPath is the path of the HTTP check; empty means DefaultCheckPath.
	CheckPath string
	// CheckInterval is the check's period; zero means DefaultCheckInterval.
	CheckInterval time.Duration
	// CheckTimeout bounds one check; zero means DefaultCheckTimeout.
	CheckTimeout time.Duration
	// DeregisterAfter is Consul's DeregisterCriticalServiceAfter; zero means
	// DefaultDeregisterAfter.
	DeregisterAfter time.Duration
}

// Registrar registers one process with the local Consul agent and
// deregisters it. Its methods are safe for concurrent use.
type Registrar struct {
	agent *api.Agent
	reg   *api.AgentServiceRegistration
}

// NewRegistrar checks r, fills in its defaults and returns a Registrar that
// registers it through client's agent. It does no I/O.
func NewRegistrar(client *api.Client, r Registration) (*Registrar, error) {
	var errs []error
	if r.Service == "" {
		errs = append(errs, errors.New("service name is empty"))
	}
	if r.Address == "" {
		errs = append(errs, errors.New("address is empty"))
	}
	if r.Port <= 0 || r.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d is not a TCP port", r.Port))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}
	if r.ID == "" {
		r.ID = instanceID(r.Service, r.Address, r.Port)
	}
	path := cmp.Or(r.CheckPath, DefaultCheckPath)
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	var tags []string
	if r.Version != "" {
		tags = append(tags, versionTag+r.Version)
	}
	return &Registrar{
		agent: client.Agent(),
		reg: &api.AgentServiceRegistration{
			ID:      r.ID,
			Name:    r.Service,
			Address: r.Address,
			Port:    r.Port,
			Tags:    tags,
			Check: &api.AgentServiceCheck{
				Name:                           r.Service + " readiness",
				HTTP:                           "http://" + net.JoinHostPort(r.Address, strconv.Itoa(r.Port)) + path,
				Method:                         "GET",
				Interval:                       cmp.Or(r.CheckInterval, DefaultCheckInterval).String(),
				Timeout:                        cmp.Or(r.CheckTimeout, DefaultCheckTimeout).String(),
				DeregisterCriticalServiceAfter: cmp.Or(r.DeregisterAfter, DefaultDeregisterAfter).String(),
				FailuresBeforeCritical:         DefaultFailuresBeforeCritical,
				// Status is left empty: the check starts critical,
				// so no caller is sent here before /readyz passes.
			},
		},
	}, nil
}

// ID returns the instance id registered.
func (r *Registrar) ID() string { return r.reg.ID }

// Register adds the instance and its check to the agent, replacing any
// earlier registration under the same id (so it may be called again, for
// example after the agent restarted and forgot it). The instance is offered
// to callers once its first check passes.
//
// Then it deregisters the agent's other instances of the service at the
// same address and port: only one process can listen there, so they are
// this one's predecessors, killed before they could deregister. Left in
// place, their checks would pass again against this process, and every
// crash and restart on a fixed address would leave one more entry that the
// agent checks every second and callers pick as another instance (the
// chaos run's 1,000 kills left about 170 per replica: 550 readiness
// requests a second).
func (r *Registrar) Register(ctx context.Context) error {
	opts := api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.agent.ServiceRegisterOpts(r.reg, opts); err != nil {
		return fmt.Errorf("register %s with consul: %w", r.reg.ID, err)
	}
	return r.removePredecessors(ctx)
}

// removePredecessors deregisters the agent's instances of the service at
// the instance's address and port, but the instance itself.
func (r *Registrar) removePredecessors(ctx context.Context) error {
	filter := fmt.Sprintf("Service == %q and Port == %d", r.reg.Name, r.reg.Port)
	services, err := r.agent.ServicesWithFilterOpts(filter, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("list %s's instances in consul: %w", r.reg.Name, err)
	}
	var errs []error
	for id, s := range services {
		if id == r.reg.ID || s.Address != r.reg.Address {
			continue
		}
		errs = append(errs, deregister(ctx, r.agent, id))
	}
	return errors.Join(errs...)
}

// Registered reports whether the agent still has the instance. An agent
// that restarted without its state (a dev agent always does; a client
// agent whose data directory was lost) has forgotten every registration,
// and nothing tells the instance but asking.
func (r *Registrar) Registered(ctx context.Context) (bool, error) {
	_, _, err := r.agent.Service(r.reg.ID, (&api.QueryOptions{}).WithContext(ctx))
	var status api.StatusError
	if errors.As(err, &status) && status.Code == 404 {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ask consul for %s: %w", r.reg.ID, err)
	}
	return true, nil
}

// Deregister removes the instance and its check from the agent. Call it
// first on graceful shutdown, before draining (see the package doc).
// Deregistering an instance the agent does not know is not an error.
func (r *Registrar) Deregister(ctx context.Context) error {
	return deregister(ctx, r.agent, r.reg.ID)
}

// deregister removes instance id from agent; an id the agent does not
// know is already gone.
func deregister(ctx context.Context, agent *api.Agent, id string) error {
	err := agent.ServiceDeregisterOpts(id, (&api.QueryOptions{}).WithContext(ctx))
	var status api.StatusError
	if errors.As(err, &status) && status.Code == 404 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deregister %s from consul: %w", id, err)
	}
	return nil
}

// instanceID returns "<service>-<address>-<port>-<random>", with the
// address's dots and colons turned into dashes so the id reads well in URLs.
func instanceID(service, address string, port int) string {
	host := strings.NewReplacer(".", "-", ":", "-", "[", "", "]", "").Replace(address)
	return fmt.Sprintf("%s-%s-%d-%s", service, host, port, strings.ToLower(rand.Text()[:8]))
}
