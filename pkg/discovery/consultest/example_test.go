package consultest_test

import (
	"context"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/discovery"
	"github.com/microshop/microshop/pkg/discovery/consultest"
)

// testResolver is how a test gets Consul: start an agent, give the code
// under test its address (CONSUL_HTTP_ADDR) or a client of it.
func testResolver(t *testing.T) {
	consul := consultest.Start(t) // skips without the binary, fails under CI=true
	t.Setenv("CONSUL_HTTP_ADDR", consul.Addr)

	r := discovery.NewConsulResolver(consul.Client(), "order", discovery.ResolverOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	go r.Run(ctx)
	<-r.Synced()

	consul.Stop()    // Consul goes away: the resolver keeps its last answer
	consul.Restart() // and comes back empty, on the same address
}

// Example shows the calls a test makes (see testResolver). It has no Output
// comment, so go test compiles it but does not run it: an Example gets no
// *testing.T, and consultest needs one.
func Example() {
	_ = testResolver
}
