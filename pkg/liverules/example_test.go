package liverules_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/liverules"
)

// The embedded mode reads the document from an environment variable once:
// an invalid one is a configuration error at start.
func ExampleParse() {
	defaults := map[string]breaker.Rules{"psp": {ErrorRatio: 0.5}}

	rules, err := liverules.Parse(`{"psp": {"errorRatio": 0.25, "openFor": "30s"}}`, defaults, breaker.Validate)
	fmt.Println(rules["psp"].ErrorRatio, err)

	rules, err = liverules.Parse("", defaults, breaker.Validate) // variable unset
	fmt.Println(rules["psp"].ErrorRatio, err)

	_, err = liverules.Parse(`{"psp": {"errorRatio": 2}}`, defaults, breaker.Validate)
	fmt.Println(err)
	// Output:
	// 0.25 <nil>
	// 0.5 <nil>
	// invalid: upstream psp: errorRatio 2 is not in [0, 1]
}

// With Consul, the breakers follow microshop/payment/breaker: read at start,
// then watched; each valid change goes to the breaker Set. (No Output
// comment: it needs a Consul agent.)
func ExampleWatch() {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	defaults := map[string]breaker.Rules{"psp": {ErrorRatio: 0.5, SlowCall: breaker.Duration(2e9), SlowRatio: 0.5}}
	breakers, err := breaker.NewSet(breaker.Config{Metrics: reg}, defaults)
	if err != nil {
		panic(err)
	}
	client, err := api.NewClient(&api.Config{Address: "127.0.0.1:8500"})
	if err != nil {
		panic(err)
	}

	w, err := liverules.NewWatch(client, liverules.Key("payment", "breaker"), defaults, liverules.Options[map[string]breaker.Rules]{
		Validate: breaker.Validate,
		OnChange: func(rules map[string]breaker.Rules) {
			if err := breakers.SetRules(rules); err != nil { // cannot fail: validated
				slog.Error("apply breaker rules", slog.Any("error", err))
			}
		},
		Metrics: reg,
	})
	if err != nil {
		panic(err)
	}
	if err := w.Load(ctx); err != nil {
		slog.Warn("consul unreachable; default breaker rules", slog.Any("error", err))
	}
	go w.Run(ctx)
}
