package simulator_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/psp/simulator"
)

func FuzzCreateCharge(f *testing.F) {
	f.Add("k", chargeBody(1999, simulator.CardSucceeds))
	f.Add("k", chargeBody(1, simulator.CardHangs))
	f.Add("", `{"amount":1e99,"currency":"€","card_number":"4242"}`)
	f.Add("\x00", `[]`)
	f.Fuzz(func(t *testing.T, key, body string) {
		sim := newSimulator(simulator.Settings{Hang: time.Nanosecond})
		c := call{method: http.MethodPost, target: "/v1/charges", key: key, body: body}
		if !validHeader(key) {
			c.key = ""
		}
		rec := c.do(sim.Handler())
		servicetest.CheckNoServerError(t, rec)
	})
}

func FuzzCreateRefund(f *testing.F) {
	f.Add("r", `{"charge_id":"{charge}","amount":500}`)
	f.Add("r", `{"charge_id":"{charge}","amount":9223372036854775807}`)
	f.Add("r", `{"charge_id":"ch_x","amount":-1}`)
	f.Fuzz(func(t *testing.T, key, body string) {
		sim := newSimulator(simulator.Settings{})
		charge, _, err := sim.Charge("c", simulator.ChargeRequest{Amount: 1000, Currency: "EUR", CardNumber: simulator.CardSucceeds})
		if err != nil {
			t.Fatal(err)
		}
		c := call{method: http.MethodPost, target: "/v1/refunds", key: key, body: strings.ReplaceAll(body, "{charge}", charge.ID)}
		if !validHeader(key) {
			c.key = ""
		}
		rec := c.do(sim.Handler())
		servicetest.CheckNoServerError(t, rec)
	})
}

func FuzzPutFaults(f *testing.F) {
	f.Add(`{"latency":"250ms","failure_rate":0.2}`)
	f.Add(`{"latency":"9223372036854775807ns","failure_rate":1e308}`)
	f.Add(`{"latency":null,"failure_rate":null}`)
	f.Fuzz(func(t *testing.T, body string) {
		sim := newSimulator(simulator.Settings{})
		c := call{method: http.MethodPut, target: "/v1/admin/faults", body: body}
		rec := c.do(sim.Handler())
		servicetest.CheckNoServerError(t, rec)
		if f := sim.Faults(); f.Latency < 0 || f.Latency > simulator.MaxLatency || f.FailureRate < 0 || f.FailureRate > 1 {
			t.Fatalf("body %q left faults out of range: %+v", body, f)
		}
	})
}

func FuzzLookups(f *testing.F) {
	f.Add("c")
	f.Add("")
	f.Add("%ZZ\x00\xff")
	f.Fuzz(func(t *testing.T, key string) {
		sim := newSimulator(simulator.Settings{})
		if _, _, err := sim.Charge("c", simulator.ChargeRequest{Amount: 1, Currency: "EUR", CardNumber: simulator.CardSucceeds}); err != nil {
			t.Fatal(err)
		}
		query := url.Values{"idempotency_key": {key}}.Encode()
		for _, path := range []string{"/v1/charges?", "/v1/refunds?"} {
			c := call{method: http.MethodGet, target: path + query}
			rec := c.do(sim.Handler())
			servicetest.CheckNoServerError(t, rec)
		}
	})
}

// validHeader reports whether v can be sent as a header value at all;
// others never reach a server.
func validHeader(v string) bool {
	for _, r := range v {
		if r == '\r' || r == '\n' || r == 0 {
			return false
		}
	}
	return true
}
