package liverules_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/discovery/consultest"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
)

const testTimeout = 30 * time.Second

// limits is a rules document of the tests: a limit per route.
type limits struct {
	Routes map[string]int `json:"routes"`
}

var defaults = limits{Routes: map[string]int{"*": 100}}

// positive refuses limits below 1.
func positive(l limits) error {
	for route, n := range l.Routes {
		if n < 1 {
			return errors.New("route " + route + ": limit below 1")
		}
	}
	return nil
}

func TestKey(t *testing.T) {
	if got, want := liverules.Key("gateway", "breaker"), "microshop/gateway/breaker"; got != want {
		t.Errorf("Key = %q, want %q", got, want)
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    limits
		wantErr string
	}{
		{name: "empty: defaults", doc: "", want: defaults},
		{name: "document", doc: `{"routes": {"/orders": 5}}`, want: limits{Routes: map[string]int{"/orders": 5}}},
		{name: "omitted fields are zero, not defaults", doc: `{}`, want: limits{}},
		{name: "invalid JSON", doc: `{"routes": `, wantErr: "decode"},
		{name: "unknown field", doc: `{"route": {"/orders": 5}}`, wantErr: `unknown field "route"`},
		{name: "trailing data", doc: `{"routes": {}} {}`, wantErr: "data after the document"},
		{name: "wrong type", doc: `{"routes": {"/orders": "five"}}`, wantErr: "decode"},
		{name: "refused by validate", doc: `{"routes": {"/orders": 0}}`, wantErr: "invalid: route /orders: limit below 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := liverules.Parse(tt.doc, defaults, positive)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// recorder keeps what OnChange was called with.
type recorder struct {
	mu     sync.Mutex
	values []limits
}

func (r *recorder) record(l limits) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.values = append(r.values, l)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.values)
}

// since returns the values recorded after the first n.
func (r *recorder) since(n int) []limits {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]limits(nil), r.values[n:]...)
}

// TestWatch drives a watch through every kind of change a real Consul KV
// key goes through.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	consul := consultest.Start(t)
	kv := consul.Client().KV()
	key := liverules.Key("gateway", "limit")
	put(ctx, t, kv, key, `{"routes": {"/orders": 5}}`)

	reg := prometheus.NewRegistry()
	var logs logtest.Buffer
	var changes recorder
	w, err := liverules.NewWatch(consul.Client(), key, defaults, liverules.Options[limits]{
		Validate: positive,
		OnChange: changes.record,
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		Metrics:  reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(defaults, w.Current()); diff != "" {
		t.Errorf("before Load (-want +got):\n%s", diff)
	}
	if err := w.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(limits{Routes: map[string]int{"/orders": 5}}, w.Current()); diff != "" {
		t.Errorf("after Load (-want +got):\n%s", diff)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	rejected := func() float64 { return counter(t, reg, "liverules_rejected_total", key) }
	steps := []struct {
		name         string
		doc          string // "" deletes the key
		want         limits
		wantChange   bool // OnChange called with want
		wantRejected float64
		wantLog      string
	}{
		{name: "new value", doc: `{"routes": {"/orders": 7}}`, want: limits{Routes: map[string]int{"/orders": 7}}, wantChange: true, wantLog: "rules document applied"},
		{name: "invalid JSON kept out", doc: `{"routes": `, want: limits{Routes: map[string]int{"/orders": 7}}, wantRejected: 1, wantLog: "rules document rejected"},
		{name: "refused by validate kept out", doc: `{"routes": {"/orders": -1}}`, want: limits{Routes: map[string]int{"/orders": 7}}, wantRejected: 2, wantLog: "limit below 1"},
		{name: "unknown field kept out", doc: `{"routes": {}, "burst": 3}`, want: limits{Routes: map[string]int{"/orders": 7}}, wantRejected: 3, wantLog: `unknown field \"burst\"`},
		{name: "valid again", doc: `{"routes": {"/orders": 9, "/products": 50}}`, want: limits{Routes: map[string]int{"/orders": 9, "/products": 50}}, wantChange: true, wantRejected: 3},
		{name: "deleted: defaults", doc: "", want: defaults, wantChange: true, wantRejected: 3, wantLog: "no rules document; defaults in force"},
	}
	for _, step := range steps {
		before := changes.count()
		if step.doc == "" {
			if _, err := kv.Delete(key, nil); err != nil {
				t.Fatalf("%s: delete: %v", step.name, err)
			}
		} else {
			put(ctx, t, kv, key, step.doc)
		}
		poll.Until(ctx, t, step.name, func() bool {
			return rejected() == step.wantRejected && cmp.Equal(step.want, w.Current()) &&
				strings.Contains(logs.String(), step.wantLog)
		})
		got := changes.since(before)
		var want []limits
		if step.wantChange {
			want = []limits{step.want}
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s: OnChange calls mismatch (-want +got):\n%s", step.name, diff)
		}
	}
	if got := counter(t, reg, "liverules_applied_total", key); got != 3 {
		t.Errorf("liverules_applied_total = %v, want 3 (the loaded value and two new ones)", got)
	}
}

// TestWatchOutlivesConsul stops Consul under a watch: the rules in force
// stay while it is gone.
func TestWatchOutlivesConsul(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	consul := consultest.Start(t)
	key := liverules.Key("payment", "breaker")
	put(ctx, t, consul.Client().KV(), key, `{"routes": {"psp": 3}}`)
	var logs logtest.Buffer
	w, err := liverules.NewWatch(consul.Client(), key, defaults, liverules.Options[limits]{
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	want := limits{Routes: map[string]int{"psp": 3}}
	poll.Until(ctx, t, "the document in force", func() bool { return cmp.Equal(want, w.Current()) })

	consul.Stop()
	poll.Until(ctx, t, "a failed query logged", func() bool {
		return strings.Contains(logs.String(), "consul query failed; keeping the rules in force")
	})
	if diff := cmp.Diff(want, w.Current()); diff != "" {
		t.Errorf("rules while consul is down (-want +got):\n%s", diff)
	}
	if err := w.Load(ctx); err == nil {
		t.Errorf("Load with consul down succeeded, want an error")
	}
}

func put(ctx context.Context, t *testing.T, kv *api.KV, key, doc string) {
	t.Helper()
	if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte(doc)}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// counter returns the value of the counter name{key} in reg, 0 if absent.
func counter(t *testing.T, reg *prometheus.Registry, name, key string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			if mf.GetName() == name && len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == key {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
