package discovery_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/discovery"
)

// A caller picks an instance per request and reports when the request has
// ended; the balancer steers the next requests away from instances that are
// still busy.
func ExampleBalancer() {
	// Embedded mode: the addresses come from configuration.
	b := discovery.NewBalancer("order", discovery.NewStaticResolver("127.0.0.1:8081", "127.0.0.1:9081"))

	first, firstDone, err := b.Pick()
	if err != nil {
		panic(err)
	}
	// first is still busy, so with two instances the next pick is the other.
	second, secondDone, _ := b.Pick()
	fmt.Println(first.Addr != second.Addr)
	firstDone()
	secondDone()

	// A retry avoids the instance that just failed.
	retry, retryDone, _ := b.Pick(first.ID)
	fmt.Println(retry.ID == second.ID)
	retryDone()

	_, _, err = b.Pick(first.ID, second.ID)
	fmt.Println(err)
	// Output:
	// true
	// true
	// order: no healthy instance
}

// A service registers itself at start, follows the services it calls, and
// on shutdown deregisters before it drains. (It has no Output comment: it
// needs a Consul agent.)
func ExampleRegistrar() {
	ctx, stop := context.WithCancel(context.Background()) // main: signal.NotifyContext
	defer stop()
	client, err := api.NewClient(&api.Config{Address: "127.0.0.1:8500"})
	if err != nil {
		panic(err)
	}

	reg, err := discovery.NewRegistrar(client, discovery.Registration{
		Service: "gateway", Address: "127.0.0.1", Port: 8080, Version: "1.4.0",
	})
	if err != nil {
		panic(err)
	}
	if err := reg.Register(ctx); err != nil {
		panic(err)
	}

	orders := discovery.NewConsulResolver(client, "order", discovery.ResolverOptions{Logger: slog.Default()})
	go orders.Run(ctx)
	<-orders.Synced()
	balancer := discovery.NewBalancer("order", orders)

	in, done, err := balancer.Pick()
	if err == nil {
		resp, err := http.Get("http://" + in.Addr + "/api/v1/orders/o-1")
		if err == nil {
			resp.Body.Close()
		}
		done()
	}

	<-ctx.Done()                                                 // SIGTERM
	if err := reg.Deregister(context.Background()); err != nil { // first: callers stop choosing us
		slog.Warn("deregister", slog.Any("error", err))
	}
	// then drain the HTTP server (pkg/httpserver)
}
