package main

import (
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/microshop/microshop/services/gateway/api"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// TestMutationProbe sends mutations of a valid request of every operation
// to the running gateway: only 4xx problems (or a 2xx, for a mutation that
// happens to be valid), never a 5xx, never a reset.
func TestMutationProbe(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)
	tok := apitest.Tokens{Customer: c.Login(t, "alice", "alice-demo"), Admin: c.Login(t, "admin", "admin-demo")}
	var order struct{ ID string }
	c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + tok.Customer, "Idempotency-Key": "probe-setup"},
		Body:   `{"card_number":"` + apitest.GoodCard + `","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`}).Decode(t, &order)
	valid := apitest.ValidRequests(tok, apitest.Known{SKU: "MUG-CLASSIC", OrderID: order.ID})

	doc, err := api.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for path, item := range doc.Paths.Map() {
		pattern := regexp.MustCompile(`^/api/v1` + regexp.MustCompile(`\{[a-z]+\}`).ReplaceAllString(path, `[^/]+`) + `(\?.*)?$`)
		for method := range item.Operations() {
			if !slices.ContainsFunc(valid, func(r apitest.Request) bool { return r.Method == method && pattern.MatchString(r.Path) }) {
				t.Errorf("the probe has no valid request for %s %s", method, path)
			}
		}
	}

	for _, req := range valid {
		t.Run(req.Method+" "+strings.Split(req.Path, "?")[0], func(t *testing.T) {
			if resp := c.Do(t, req); resp.Status >= 300 {
				t.Fatalf("the valid request is refused: %d %s", resp.Status, resp.Body)
			}
			apitest.Probe(t, c, req)
		})
	}
}
