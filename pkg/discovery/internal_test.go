package discovery

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/consul/api"
)

func TestNextIndex(t *testing.T) {
	tests := []struct {
		name       string
		prev, last uint64
		want       uint64
	}{
		{name: "first answer", prev: 0, last: 42, want: 42},
		{name: "changed", prev: 42, last: 57, want: 57},
		{name: "wait time passed, nothing changed", prev: 57, last: 57, want: 57},
		{name: "went backwards: consul restarted", prev: 57, last: 12, want: 0},
		{name: "zero would spin", prev: 0, last: 0, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextIndex(tt.prev, tt.last); got != tt.want {
				t.Errorf("nextIndex(%d, %d) = %d, want %d", tt.prev, tt.last, got, tt.want)
			}
		})
	}
}

func TestInstancesOf(t *testing.T) {
	entry := func(id, addr string, port int, tags ...string) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node:    &api.Node{Address: "10.0.0.9"},
			Service: &api.AgentService{ID: id, Address: addr, Port: port, Tags: tags},
		}
	}
	tests := []struct {
		name    string
		entries []*api.ServiceEntry
		want    []Instance
	}{
		{name: "none", entries: nil, want: []Instance{}},
		{
			name:    "sorted by id, version from tag",
			entries: []*api.ServiceEntry{entry("order-b", "127.0.0.1", 9002, "version=1.4.0", "canary"), entry("order-a", "127.0.0.1", 9001)},
			want: []Instance{
				{ID: "order-a", Addr: "127.0.0.1:9001"},
				{ID: "order-b", Addr: "127.0.0.1:9002", Version: "1.4.0"},
			},
		},
		{
			name:    "no service address: the node's",
			entries: []*api.ServiceEntry{entry("order-a", "", 9001)},
			want:    []Instance{{ID: "order-a", Addr: "10.0.0.9:9001"}},
		},
		{
			name:    "IPv6 address bracketed",
			entries: []*api.ServiceEntry{entry("order-a", "::1", 9001)},
			want:    []Instance{{ID: "order-a", Addr: "[::1]:9001"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, instancesOf(tt.entries)); diff != "" {
				t.Errorf("instancesOf mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBalancerPick(t *testing.T) {
	three := NewStaticResolver("a:1", "b:1", "c:1")
	tests := []struct {
		name     string
		resolver Resolver
		inFlight map[string]int // requests already in flight per id
		draws    []int          // what the random source returns, in order
		exclude  []string
		want     string
		wantErr  error
	}{
		{name: "no instance", resolver: StaticResolver{}, wantErr: ErrNoInstance},
		{name: "one instance: no draw", resolver: NewStaticResolver("a:1"), want: "a:1"},
		{name: "all excluded", resolver: three, exclude: []string{"a:1", "b:1", "c:1"}, wantErr: ErrNoInstance},
		{name: "tie: the first draw", resolver: three, draws: []int{2, 0}, want: "c:1"},
		{name: "fewer in flight wins", resolver: three, inFlight: map[string]int{"a:1": 3, "c:1": 1}, draws: []int{0, 1}, want: "c:1"},
		{name: "second draw skips the first", resolver: three, inFlight: map[string]int{"a:1": 1}, draws: []int{0, 0}, want: "b:1"},
		{name: "busiest not drawn", resolver: three, inFlight: map[string]int{"a:1": 9, "b:1": 2, "c:1": 1}, draws: []int{1, 1}, want: "c:1"},
		{
			name: "excluded never chosen", resolver: three, exclude: []string{"b:1"},
			inFlight: map[string]int{"a:1": 5}, draws: []int{0, 0}, want: "c:1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBalancer("order", tt.resolver)
			draws := tt.draws
			b.intn = func(n int) int {
				if len(draws) == 0 {
					t.Fatalf("unexpected draw in [0, %d)", n)
				}
				d := draws[0]
				draws = draws[1:]
				return d
			}
			for id, n := range tt.inFlight {
				b.counter(id).Store(int64(n))
			}
			got, done, err := b.Pick(tt.exclude...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Pick error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "order") {
					t.Errorf("error %q does not name the service", err)
				}
				return
			}
			if got.ID != tt.want {
				t.Errorf("Pick = %s, want %s", got.ID, tt.want)
			}
			before := b.InFlight(got.ID)
			done()
			done() // a second call must not count twice
			if after := b.InFlight(got.ID); after != before-1 {
				t.Errorf("in flight after done = %d, want %d", after, before-1)
			}
		})
	}
}

func TestBalancerForgetsGoneInstances(t *testing.T) {
	var r changing
	b := NewBalancer("order", &r)
	busy := NewStaticResolver("keep:1")
	r.list = busy
	_, keepDone, err := b.Pick()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // a hundred restarts, each a new id
		r.list = NewStaticResolver(fmt.Sprintf("gone:%d", i))
		_, done, err := b.Pick()
		if err != nil {
			t.Fatal(err)
		}
		done()
	}
	r.list = busy
	if _, done, err := b.Pick(); err == nil {
		done()
	}
	if got := len(b.inFlight); got > 2*len(busy)+8+1 {
		t.Errorf("balancer keeps %d counters for 1 current instance", got)
	}
	if got := b.InFlight("keep:1"); got != 1 {
		t.Errorf("in flight on a current instance with a request = %d, want 1", got)
	}
	keepDone()
}

// changing is a resolver whose answer the test changes.
type changing struct{ list []Instance }

func (c *changing) Instances() []Instance { return c.list }

// TestBalancerEject: an ejected instance is skipped until its time is over,
// unless no other is left.
func TestBalancerEject(t *testing.T) {
	now := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	b := NewBalancer("order", NewStaticResolver("a:1", "b:1"))
	b.now = func() time.Time { return now }
	b.intn = func(int) int { return 0 } // both draws favour a:1, tied at 0 in flight
	pick := func(exclude ...string) string {
		t.Helper()
		in, done, err := b.Pick(exclude...)
		if err != nil {
			t.Fatalf("Pick: %v", err)
		}
		done()
		return in.ID
	}
	if got := pick(); got != "a:1" {
		t.Fatalf("before ejecting: %s, want a:1", got)
	}
	b.Eject("a:1", 5*time.Second)
	if got := pick(); got != "b:1" {
		t.Errorf("a:1 ejected: %s, want b:1", got)
	}
	if got := pick("b:1"); got != "a:1" {
		t.Errorf("a:1 ejected and b:1 excluded: %s, want a:1 (an ejected instance beats none)", got)
	}
	now = now.Add(5 * time.Second)
	if got := pick(); got != "a:1" {
		t.Errorf("ejection over: %s, want a:1 again", got)
	}
	if len(b.ejected) != 0 {
		t.Errorf("%d ejections kept after they ended", len(b.ejected))
	}
}
