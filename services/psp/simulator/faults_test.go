package simulator_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/services/psp/simulator"
)

// faultsJSON is the wire form of the faults.
type faultsJSON struct {
	Latency     string  `json:"latency"`
	FailureRate float64 `json:"failure_rate"`
}

func TestFaultsEndpoints(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	h := sim.Handler()
	get := call{method: http.MethodGet, target: "/v1/admin/faults"}

	if diff := cmp.Diff(faultsJSON{Latency: "0s"}, decode[faultsJSON](t, get.do(h), http.StatusOK)); diff != "" {
		t.Errorf("initial faults (-want +got):\n%s", diff)
	}

	accepted := []struct {
		name string
		body string
		want faultsJSON // the faults in force afterwards
	}{
		{"set both", `{"latency":"250ms","failure_rate":0.2}`, faultsJSON{"250ms", 0.2}},
		{"back to none", `{"latency":"0s","failure_rate":0}`, faultsJSON{"0s", 0}},
		{"certain failure", `{"latency":"0s","failure_rate":1}`, faultsJSON{"0s", 1}},
	}
	for _, tt := range accepted { // in order: each row changes what the previous one set
		t.Run(tt.name, func(t *testing.T) {
			rec := call{method: http.MethodPut, target: "/v1/admin/faults", body: tt.body}.do(h)
			if diff := cmp.Diff(tt.want, decode[faultsJSON](t, rec, http.StatusOK)); diff != "" {
				t.Errorf("PUT answer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, decode[faultsJSON](t, get.do(h), http.StatusOK)); diff != "" {
				t.Errorf("faults in force (-want +got):\n%s", diff)
			}
		})
	}

	// A refused PUT leaves the last accepted faults in force.
	inForce := accepted[len(accepted)-1].want
	refused := []struct {
		name       string
		body       string
		wantFields []string
	}{
		{"unparsable latency", `{"latency":"soon","failure_rate":0}`, []string{"latency"}},
		{"negative latency", `{"latency":"-1s","failure_rate":0}`, []string{"latency"}},
		{"latency above the maximum", `{"latency":"11m","failure_rate":0}`, []string{"latency"}},
		{"rate above 1", `{"latency":"0s","failure_rate":1.5}`, []string{"failure_rate"}},
		{"negative rate", `{"latency":"0s","failure_rate":-0.1}`, []string{"failure_rate"}},
		{"both bad", `{"latency":"x","failure_rate":2}`, []string{"latency", "failure_rate"}},
		{"fields missing", `{}`, []string{"latency", "failure_rate"}},
		{"rate is a string", `{"latency":"0s","failure_rate":"0.5"}`, []string{"failure_rate"}},
		{"latency is a number", `{"latency":250,"failure_rate":0}`, []string{"latency"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			rec := call{method: http.MethodPut, target: "/v1/admin/faults", body: tt.body}.do(h)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, http.StatusUnprocessableEntity, rec.Body)
			}
			if diff := cmp.Diff(tt.wantFields, problemFields(t, rec)); diff != "" {
				t.Errorf("problem fields (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(inForce, decode[faultsJSON](t, get.do(h), http.StatusOK)); diff != "" {
				t.Errorf("faults in force (-want +got):\n%s", diff)
			}
		})
	}
}

// script returns a random source that yields values in order and fails the
// test when asked for more.
func script(t *testing.T, values ...float64) func() float64 {
	return func() float64 {
		if len(values) == 0 {
			t.Error("random source asked for more values than scripted")
			return 0
		}
		v := values[0]
		values = values[1:]
		return v
	}
}

func TestFailureRate(t *testing.T) {
	// With a rate of 0.5, draws below 0.5 fail.
	sim := newSimulator(simulator.Settings{Random: script(t, 0.2, 0.7, 0.49, 0.5, 0.1, 0.9, 0.3)})
	h := sim.Handler()
	charge, _, err := sim.Charge("existing", simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardSucceeds})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.SetFaults(simulator.Faults{FailureRate: 0.5}); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		call       call
		wantStatus int
	}{
		{postCharge("a", 100, simulator.CardSucceeds), 503},
		{postCharge("a", 100, simulator.CardSucceeds), 201},
		{postCharge("b", 100, simulator.CardSucceeds), 503},
		{postCharge("b", 100, simulator.CardSucceeds), 201},
		{postRefund("r", charge.ID, 10), 503},
		{postRefund("r", charge.ID, 10), 201},
		{call{method: http.MethodGet, target: "/v1/charges?idempotency_key=a"}, 503},
	}
	for i, s := range steps {
		rec := s.call.do(h)
		if rec.Code != s.wantStatus {
			t.Fatalf("step %d: status = %d, want %d; body %s", i, rec.Code, s.wantStatus, rec.Body)
		}
		if rec.Code == http.StatusServiceUnavailable {
			problemFields(t, rec)
		}
	}
	if got := len(sim.Charges()); got != 3 {
		t.Errorf("charges = %d, want 3 (the existing one, a, b): a 503 records nothing", got)
	}
	if got := len(sim.Refunds()); got != 1 {
		t.Errorf("refunds = %d, want 1", got)
	}

	// Admin routes are never failed, and a zero rate draws nothing (script
	// would complain).
	if err := sim.SetFaults(simulator.Faults{}); err != nil {
		t.Fatal(err)
	}
	if rec := postCharge("c", 100, simulator.CardSucceeds).do(h); rec.Code != http.StatusCreated {
		t.Errorf("charge without faults = %d, want 201", rec.Code)
	}
}

func TestLatencyDelaysRequestsUntilClose(t *testing.T) {
	sim := newSimulator(simulator.Settings{})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	if err := sim.SetFaults(simulator.Faults{Latency: simulator.MaxLatency}); err != nil {
		t.Fatal(err)
	}

	// A client that gives up during the delay gets nothing, and nothing is charged.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := postChargeTo(ctx, srv.URL, "slow", simulator.CardSucceeds)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("charge under the maximum latency = %v, want the client's deadline", err)
	}
	if got := sim.Charges(); len(got) != 0 {
		t.Errorf("charges = %v, want none: the client left during the delay", got)
	}

	// Close ends the delays, so a server can drain.
	sim.Close()
	resp, err := postChargeTo(t.Context(), srv.URL, "after-close", simulator.CardSucceeds)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("status after Close = %d, want 201", resp.StatusCode)
	}
}

func postChargeTo(ctx context.Context, baseURL, key, card string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/charges", strings.NewReader(chargeBody(1000, card)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	return http.DefaultClient.Do(req)
}
