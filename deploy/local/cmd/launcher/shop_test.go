package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/microshop/microshop/services/gateway/apitest"
)

// shop walks the public API of a running stack as customers and an admin
// would, checking every answer against the OpenAPI document, then sends the
// table of bad inputs.
func shop(t *testing.T, gateway string) {
	c := apitest.NewClient(t, gateway)
	alice := c.Login(t, "alice", "alice-demo")
	bob := c.Login(t, "bob", "bob-demo")
	admin := c.Login(t, "admin", "admin-demo")

	type product struct {
		SKU       string
		Available int64
	}
	var products []product
	for cursor := ""; ; {
		var page struct {
			Items      []product
			NextCursor string `json:"next_cursor"`
		}
		resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products?limit=7&cursor=" + cursor})
		if resp.Status != http.StatusOK {
			t.Fatalf("list products = %d %s", resp.Status, resp.Body)
		}
		resp.Decode(t, &page)
		products = append(products, page.Items...)
		if cursor = page.NextCursor; cursor == "" {
			break
		}
	}
	if len(products) < 20 {
		t.Fatalf("the demo catalog has %d products, want at least 20", len(products))
	}
	var inStock product
	for _, p := range products {
		if p.Available > 0 && p.Available < 1_000_000 {
			inStock = p
			break
		}
	}
	if inStock.SKU == "" {
		t.Fatal("no product in stock")
	}
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/" + inStock.SKU}); resp.Status != http.StatusOK {
		t.Errorf("get product = %d %s", resp.Status, resp.Body)
	}

	order := apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + alice, "Idempotency-Key": "e2e-" + t.Name()},
		Body:   `{"card_number":"` + apitest.GoodCard + `","lines":[{"sku":"` + inStock.SKU + `","quantity":1}]}`}
	created := c.Do(t, order)
	if created.Status != http.StatusAccepted {
		t.Fatalf("create order = %d %s", created.Status, created.Body)
	}
	var o struct {
		ID           string
		Status       string
		CancelReason string `json:"cancel_reason"`
		History      []struct{ Status, Reason string }
	}
	created.Decode(t, &o)
	replay := c.Do(t, order)
	var again struct{ ID string }
	replay.Decode(t, &again)
	if replay.Status != http.StatusOK || again.ID != o.ID {
		t.Errorf("retry with the same key = %d, order %q; want 200 with order %q", replay.Status, again.ID, o.ID)
	}

	final := func(id string) (status, reason string, body []byte) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders/" + id, Header: apitest.Bearer(alice)})
			got.Decode(t, &o)
			if got.Status != http.StatusOK {
				t.Fatalf("alice reads her order = %d %s", got.Status, got.Body)
			}
			if o.Status != "PENDING" || time.Now().After(deadline) {
				return o.Status, o.CancelReason, got.Body
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if status, _, body := final(o.ID); status != "CONFIRMED" || len(o.History) < 3 {
		t.Errorf("order with a good card ended %s; want CONFIRMED with the saga's steps in its history: %s", status, body)
	}
	var after product
	c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/" + inStock.SKU}).Decode(t, &after)
	if after.Available != inStock.Available-1 {
		t.Errorf("%s available after a confirmed order of 1 = %d, want %d", inStock.SKU, after.Available, inStock.Available-1)
	}

	declined := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + alice, "Idempotency-Key": "e2e-declined-" + t.Name()},
		Body:   `{"card_number":"4000000000000002","lines":[{"sku":"` + inStock.SKU + `","quantity":1}]}`})
	var d struct{ ID string }
	declined.Decode(t, &d)
	if status, reason, body := final(d.ID); status != "CANCELLED" || reason == "" {
		t.Errorf("order with a declining card ended %s (reason %q); want CANCELLED with a reason: %s", status, reason, body)
	}
	c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/" + inStock.SKU}).Decode(t, &after)
	if after.Available != inStock.Available-1 {
		t.Errorf("%s available after a cancelled order = %d, want the stock released back to %d", inStock.SKU, after.Available, inStock.Available-1)
	}
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders/" + o.ID, Header: apitest.Bearer(bob)}); resp.Status != http.StatusNotFound {
		t.Errorf("bob reads alice's order = %d, want 404", resp.Status)
	}
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders/" + o.ID, Header: apitest.Bearer(admin)}); resp.Status != http.StatusOK {
		t.Errorf("admin reads alice's order = %d, want 200", resp.Status)
	}
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders?limit=10", Header: apitest.Bearer(alice)}); resp.Status != http.StatusOK {
		t.Errorf("alice lists her orders = %d %s", resp.Status, resp.Body)
	}
	if resp := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/admin/products/" + inStock.SKU + "/stock-adjustments",
		Header: apitest.Bearer(admin), Body: `{"delta":5}`}); resp.Status != http.StatusOK {
		t.Errorf("admin restocks = %d %s", resp.Status, resp.Body)
	}
	if resp := c.Do(t, apitest.Request{Method: "PUT", Path: "/api/v1/admin/psp/faults",
		Header: apitest.Bearer(admin), Body: `{"latency":"0s","failure_rate":0}`}); resp.Status != http.StatusOK {
		t.Errorf("admin sets PSP faults = %d %s", resp.Status, resp.Body)
	}

	t.Run("bad inputs", func(t *testing.T) {
		apitest.RunBadInputs(t, c, apitest.BadInputs(apitest.Tokens{Customer: alice, Admin: admin}, apitest.Known{SKU: inStock.SKU}))
	})
}
