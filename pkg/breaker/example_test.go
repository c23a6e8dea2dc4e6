package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/breaker"
)

// An HTTP client whose upstream keeps failing: once half of the last calls
// failed, the breaker opens and the client fails at once, without sending,
// until the open period ends.
func ExampleSet_RoundTripper() {
	psp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer psp.Close()

	breakers, err := breaker.NewSet(breaker.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Metrics: prometheus.NewRegistry(),
	}, map[string]breaker.Rules{
		"psp": {MinRequests: 4, ErrorRatio: 0.5, OpenFor: breaker.Duration(30 * time.Second)},
	})
	if err != nil {
		panic(err)
	}
	defer breakers.Close()
	client := &http.Client{Transport: breakers.RoundTripper("psp", nil)}

	for range 5 {
		resp, err := client.Get(psp.URL)
		var open *breaker.OpenError
		switch {
		case errors.As(err, &open):
			fmt.Printf("failed fast: retry in %.0fs\n", open.RetryAfter.Round(time.Second).Seconds())
		case err != nil:
			fmt.Println(err)
		default:
			resp.Body.Close()
			fmt.Println(resp.Status)
		}
	}
	fmt.Println(breakers.State("psp"))
	// Output:
	// 503 Service Unavailable
	// 503 Service Unavailable
	// 503 Service Unavailable
	// 503 Service Unavailable
	// failed fast: retry in 30s
	// open
}

// Do guards any call, not only HTTP.
func ExampleSet_Do() {
	breakers, err := breaker.NewSet(breaker.Config{Logger: slog.New(slog.DiscardHandler)},
		map[string]breaker.Rules{"inventory": {MinRequests: 2, ErrorRatio: 1}})
	if err != nil {
		panic(err)
	}
	defer breakers.Close()
	reserve := func(context.Context) error { return errors.New("connection refused") }

	for range 3 {
		err := breakers.Do(context.Background(), "inventory", reserve)
		var open *breaker.OpenError
		if errors.As(err, &open) {
			fmt.Println(open.Upstream, "breaker open, retry in", open.RetryAfter.Round(time.Second))
			continue
		}
		fmt.Println(err)
	}
	// Output:
	// connection refused
	// connection refused
	// inventory breaker open, retry in 5s
}
