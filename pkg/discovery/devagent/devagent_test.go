package devagent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/microshop/microshop/pkg/discovery/consultest"
	"github.com/microshop/microshop/pkg/discovery/devagent"
)

// TestWaitPassing registers two instances of a service in a real agent, one
// with its check passing and one failing: WaitPassing returns once the
// agent holds the one passing instance wanted, and runs out of time, naming
// the service, while two are wanted.
func TestWaitPassing(t *testing.T) {
	consul := consultest.Start(t)
	agent := consul.Client().Agent()
	for _, r := range []struct {
		id     string
		status string
	}{{"order-1", api.HealthPassing}, {"order-2", api.HealthCritical}} {
		err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: r.id, Name: "order", Address: "127.0.0.1", Port: 1,
			Check: &api.AgentServiceCheck{TTL: "1m", Status: r.status}})
		if err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := devagent.WaitPassing(ctx, consul.Addr, map[string]int{"order": 1}); err != nil {
		t.Errorf("WaitPassing(order: 1) = %v, want nil", err)
	}

	short, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err := devagent.WaitPassing(short, consul.Addr, map[string]int{"order": 2})
	if err == nil || !strings.Contains(err.Error(), "order: 1 passing instances in Consul, want 2") {
		t.Errorf("WaitPassing(order: 2) = %v, want the deadline and order's shortfall", err)
	}
}
