package discovery

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Balancer picks an instance of one service per request by the power of two
// choices over requests in flight (see the package doc for why). It is safe
// for concurrent use.
type Balancer struct {
	service  string
	resolver Resolver
	// intn returns a random int in [0, n) and now the time; tests replace
	// them.
	intn func(n int) int
	now  func() time.Time

	mu       sync.Mutex
	inFlight map[string]*atomic.Int64 // by instance id
	ejected  map[string]time.Time     // by instance id: skipped until then
}

// NewBalancer returns a balancer over the instances r returns; service names
// the service in errors.
func NewBalancer(service string, r Resolver) *Balancer {
	return &Balancer{service: service, resolver: r, intn: rand.IntN, now: time.Now,
		inFlight: make(map[string]*atomic.Int64), ejected: make(map[string]time.Time)}
}

// Pick chooses an instance for one request, skipping the instances whose ids
// are in exclude (those a retry already tried) and, while others are left,
// the instances ejected (Eject). It returns ErrNoInstance when no instance
// is left. The caller must call done exactly once, when the request has
// ended, successfully or not.
func (b *Balancer) Pick(exclude ...string) (in Instance, done func(), err error) {
	all := b.resolver.Instances()
	candidates := all
	if len(exclude) > 0 {
		candidates = slices.DeleteFunc(slices.Clone(all), func(in Instance) bool {
			return slices.Contains(exclude, in.ID)
		})
	}
	if len(candidates) == 0 {
		return Instance{}, nil, errNoInstance(b.service)
	}

	// The lock makes comparing and incrementing one step, so that two
	// concurrent picks do not both choose the same idle instance.
	b.mu.Lock()
	defer b.mu.Unlock()
	if healthy := b.notEjected(candidates); len(healthy) > 0 {
		candidates = healthy
	}
	in = candidates[0]
	if n := len(candidates); n > 1 {
		i, j := b.intn(n), b.intn(n-1)
		if j >= i {
			j++ // j is a second, different instance
		}
		in = candidates[i]
		if b.counter(candidates[j].ID).Load() < b.counter(in.ID).Load() {
			in = candidates[j]
		}
	}
	c := b.counter(in.ID)
	c.Add(1)
	b.prune(all)
	var once sync.Once
	return in, func() { once.Do(func() { c.Add(-1) }) }, nil
}

// Eject makes Pick skip the instance of id for d, unless no other is left:
// passive health checking, for an instance the caller could not connect to.
// Consul's check needs a few failed checks to take a dead instance out
// (DefaultFailuresBeforeCritical); meanwhile a crashed instance, which fails
// at once and so has few requests in flight, would attract more than its
// share of them.
func (b *Balancer) Eject(id string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ejected[id] = b.now().Add(d)
}

// notEjected returns the candidates not ejected now, forgetting the
// ejections that are over. b.mu is held.
func (b *Balancer) notEjected(candidates []Instance) []Instance {
	if len(b.ejected) == 0 {
		return candidates
	}
	now := b.now()
	maps.DeleteFunc(b.ejected, func(_ string, until time.Time) bool { return !now.Before(until) })
	return slices.DeleteFunc(slices.Clone(candidates), func(in Instance) bool {
		_, out := b.ejected[in.ID]
		return out
	})
}

// InFlight returns the number of requests picked for the instance of id and
// not yet done.
func (b *Balancer) InFlight(id string) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.inFlight[id]; ok {
		return c.Load()
	}
	return 0
}

// counter returns the in-flight counter of id, creating it. b.mu is held.
func (b *Balancer) counter(id string) *atomic.Int64 {
	c, ok := b.inFlight[id]
	if !ok {
		c = new(atomic.Int64)
		b.inFlight[id] = c
	}
	return c
}

// prune drops the idle counters of instances that are gone, once there are
// clearly more counters than instances: every restart brings a new instance
// id, and the map must not grow with them. A done func keeps its counter,
// so dropping one with requests still in flight would lose nothing but is
// skipped anyway to keep InFlight truthful. b.mu is held.
func (b *Balancer) prune(current []Instance) {
	if len(b.inFlight) <= 2*len(current)+8 {
		return
	}
	for id, c := range b.inFlight {
		if c.Load() == 0 && !slices.ContainsFunc(current, func(in Instance) bool { return in.ID == id }) {
			delete(b.inFlight, id)
		}
	}
}

// ErrNoInstance is returned by Balancer.Pick when the resolver knows no
// instance, or none that is not excluded.
var ErrNoInstance = errors.New("no healthy instance")

// errNoInstance names the service in ErrNoInstance.
func errNoInstance(service string) error {
	return fmt.Errorf("%s: %w", service, ErrNoInstance)
}
