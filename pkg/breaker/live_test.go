package breaker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/discovery/consultest"
	"github.com/microshop/microshop/pkg/liverules"
	"github.com/microshop/microshop/pkg/poll"
)

// TestRulesLiveFromConsul changes the breaker document in a real Consul's
// KV while a Set runs: the threshold changes without a restart, and an
// invalid document leaves it as it was.
func TestRulesLiveFromConsul(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	consul := consultest.Start(t)
	kv := consul.Client().KV()
	key := liverules.Key("payment", "breaker")
	putRules := func(doc string) {
		t.Helper()
		if _, err := kv.Put(&api.KVPair{Key: key, Value: []byte(doc)}, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	lenient := pspRules // trips at half the calls failing
	putRules(rulesJSON(t, map[string]breaker.Rules{"psp": lenient}))

	f := newFixture(t, map[string]breaker.Rules{}) // no breaker until the document is read
	w, err := liverules.NewWatch(consul.Client(), key, map[string]breaker.Rules{}, liverules.Options[map[string]breaker.Rules]{
		Validate: breaker.Validate,
		OnChange: func(rules map[string]breaker.Rules) {
			if err := f.set.SetRules(rules); err != nil {
				t.Errorf("SetRules of a validated document: %v", err)
			}
		},
		Logger:  slog.New(slog.NewTextHandler(f.logs, nil)),
		Metrics: f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
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

	mix := []outcome{ok, ok, ok, fail} // a quarter of the calls fail
	for _, o := range mix {
		_ = f.do("psp", o)
	}
	if got := f.set.State("psp"); got != breaker.Closed {
		t.Fatalf("state at 25%% errors, threshold 0.5 = %v, want closed", got)
	}

	strict := lenient
	strict.ErrorRatio = 0.25
	putRules(rulesJSON(t, map[string]breaker.Rules{"psp": strict}))
	poll.Until(ctx, t, "threshold 0.25 in force", func() bool { return f.set.Rules()["psp"].ErrorRatio == 0.25 })
	for _, o := range mix {
		_ = f.do("psp", o)
	}
	if got := f.set.State("psp"); got != breaker.Open {
		t.Fatalf("state at 25%% errors, threshold 0.25 = %v, want open", got)
	}

	putRules(`{"psp": {"errorRatio": 1.5}}`)
	poll.Until(ctx, t, "the invalid document rejected", func() bool {
		return value(t, f.reg, "liverules_rejected_total", map[string]string{"key": key}) == 1
	})
	if got := f.set.Rules()["psp"].ErrorRatio; got != 0.25 {
		t.Errorf("error ratio after an invalid document = %v, want 0.25 still", got)
	}
	if got := f.set.State("psp"); got != breaker.Open {
		t.Errorf("state after an invalid document = %v, want open still", got)
	}
}

func rulesJSON(t *testing.T, rules map[string]breaker.Rules) string {
	t.Helper()
	b, err := json.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
