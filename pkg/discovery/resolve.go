package discovery

import (
	"cmp"
	"context"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/consul/api"
)

// Instance is one instance of a service that can take requests.
type Instance struct {
	// ID is the instance id: Consul's service id, or for a static instance
	// its address.
	ID string
	// Addr is the address to dial, "host:port".
	Addr string
	// Version is the instance's version tag, "" if it has none.
	Version string
}

// Resolver knows the instances of one service currently fit to serve.
type Resolver interface {
	// Instances returns them, ordered by ID. The caller must not modify
	// the slice. It never blocks.
	Instances() []Instance
}

var (
	_ Resolver = (*ConsulResolver)(nil)
	_ Resolver = StaticResolver(nil)
)

// StaticResolver is a fixed list of instances: the resolver of the embedded
// mode, where each service's address is configured.
type StaticResolver []Instance

// NewStaticResolver returns a StaticResolver of one instance per address
// ("host:port"), each with its address as id.
func NewStaticResolver(addrs ...string) StaticResolver {
	s := make(StaticResolver, 0, len(addrs))
	for _, a := range addrs {
		s = append(s, Instance{ID: a, Addr: a})
	}
	slices.SortFunc(s, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return s
}

// Instances returns s.
func (s StaticResolver) Instances() []Instance { return s }

// ResolverOptions tune a ConsulResolver. The zero value is ready to use.
type ResolverOptions struct {
	// Logger receives a line per change of the instance list and per failed
	// query. Nil means slog.Default().
	Logger *slog.Logger
	// WaitTime is how long Consul may hold one blocking query open when
	// nothing changes; zero means one minute. Consul adds up to 1/16 of it
	// as jitter.
	WaitTime time.Duration
	// MaxBackoff caps the pause between queries after failures; zero means
	// 5s. The pause starts at 100ms and doubles (randomised ±50%) up to it.
	MaxBackoff time.Duration
}

// ConsulResolver follows the healthy instances of one service: those whose
// every check passes. Run does the following; Instances reads the result and
// is safe to call from any goroutine.
type ConsulResolver struct {
	health  *api.Health
	service string
	opts    ResolverOptions
	log     *slog.Logger

	instances atomic.Pointer[[]Instance]
	synced    chan struct{} // closed after the first answer
	syncOnce  sync.Once
}

// NewConsulResolver returns a resolver of service through client. It knows
// no instance until Run has had a first answer from Consul.
func NewConsulResolver(client *api.Client, service string, opts ResolverOptions) *ConsulResolver {
	r := &ConsulResolver{
		health:  client.Health(),
		service: service,
		opts:    opts,
		log:     cmp.Or(opts.Logger, slog.Default()).With(slog.String("upstream", service)),
		synced:  make(chan struct{}),
	}
	r.instances.Store(new([]Instance))
	return r
}

// Instances returns the healthy instances of the last answer from Consul,
// ordered by ID; none before the first answer.
func (r *ConsulResolver) Instances() []Instance { return *r.instances.Load() }

// Synced is closed once the resolver has had its first answer from Consul,
// so that a caller may wait for it before it starts serving.
func (r *ConsulResolver) Synced() <-chan struct{} { return r.synced }

// Run follows the service with blocking queries until ctx ends, then returns
// nil. A failed query is logged and retried after a backoff; meanwhile
// Instances keeps answering with the last list Consul gave.
func (r *ConsulResolver) Run(ctx context.Context) error {
	pause := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         cmp.Or(r.opts.MaxBackoff, 5*time.Second),
	}
	pause.Reset()
	var index uint64
	for {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: cmp.Or(r.opts.WaitTime, time.Minute)}).WithContext(ctx)
		entries, meta, err := r.health.Service(r.service, "", true, q)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Ask afresh next time: the agent may come back restarted,
			// its indexes started over, and a query waiting for the old
			// index would sit out its whole wait time on a stale list.
			index = 0
			wait := pause.NextBackOff()
			r.log.WarnContext(ctx, "consul query failed; keeping the last known instances",
				slog.Any("error", err), slog.Int("instances", len(r.Instances())), slog.Duration("retry_in", wait))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		pause.Reset()
		index = nextIndex(index, meta.LastIndex)
		r.update(ctx, instancesOf(entries))
	}
}

// nextIndex returns the WaitIndex of the next blocking query, following
// Consul's rules for blocking queries: an index that went backwards (Consul
// restarted, or its state was restored from a snapshot) is reset to 0, which
// asks for the current answer at once, and an index of 0 is never used to
// wait, because a query with WaitIndex 0 returns at once and would spin.
func nextIndex(prev, last uint64) uint64 {
	switch {
	case last < prev:
		return 0
	case last == 0:
		return 1
	default:
		return last
	}
}

// update stores list if it differs from the current one and logs the change.
func (r *ConsulResolver) update(ctx context.Context, list []Instance) {
	old := r.Instances()
	r.syncOnce.Do(func() { close(r.synced) })
	if slices.Equal(old, list) {
		return
	}
	r.instances.Store(&list)
	ids := make([]string, len(list))
	for i, in := range list {
		ids[i] = in.ID
	}
	r.log.InfoContext(ctx, "healthy instances changed",
		slog.Int("instances", len(list)), slog.Int("before", len(old)), slog.Any("ids", ids))
}

// instancesOf turns Consul's health entries into instances ordered by ID.
func instancesOf(entries []*api.ServiceEntry) []Instance {
	list := make([]Instance, 0, len(entries))
	for _, e := range entries {
		host := e.Service.Address
		if host == "" { // registered without an address: the node's
			host = e.Node.Address
		}
		in := Instance{ID: e.Service.ID, Addr: net.JoinHostPort(host, strconv.Itoa(e.Service.Port))}
		for _, tag := range e.Service.Tags {
			if v, ok := strings.CutPrefix(tag, versionTag); ok {
				in.Version = v
			}
		}
		list = append(list, in)
	}
	slices.SortFunc(list, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return list
}
