package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/poll"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// hangingCard is the payment provider simulator's test card whose charge is
// made but never answered (services/psp/README.md).
const hangingCard = "4000000000000259"

// shop walks the public API of a running stack as customers and an admin
// would, checking every answer against the OpenAPI document, then sends the
// table of bad inputs. psp is the payment provider simulator's URL: its
// records show what was really charged and refunded.
func shop(t *testing.T, gateway, psp string) {
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
	var stocked []product
	for _, p := range products {
		if p.Available > 0 && p.Available < 1_000_000 {
			stocked = append(stocked, p)
		}
	}
	if len(stocked) < 2 {
		t.Fatalf("%d products in stock, want at least 2", len(stocked))
	}
	// inStock is for the orders that go through the saga's usual paths,
	// hangStock for the one paid with the hanging card.
	inStock, hangStock := stocked[0], stocked[1]
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/" + inStock.SKU}); resp.Status != http.StatusOK {
		t.Errorf("get product = %d %s", resp.Status, resp.Body)
	}

	// The order paid with the hanging card is placed first, so that its
	// charge step's deadline runs out while the other orders go through.
	hangingOrder := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + alice, "Idempotency-Key": "e2e-hanging-" + t.Name()},
		Body:   `{"card_number":"` + hangingCard + `","lines":[{"sku":"` + hangStock.SKU + `","quantity":1}]}`})
	if hangingOrder.Status != http.StatusAccepted {
		t.Fatalf("create order with the hanging card = %d %s", hangingOrder.Status, hangingOrder.Body)
	}
	var hanging struct{ ID string }
	hangingOrder.Decode(t, &hanging)

	order := apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + alice, "Idempotency-Key": "e2e-" + t.Name()},
		Body:   `{"card_number":"` + apitest.GoodCard + `","lines":[{"sku":"` + inStock.SKU + `","quantity":1}]}`}
	created := c.Do(t, order)
	if created.Status != http.StatusAccepted {
		t.Fatalf("create order = %d %s", created.Status, created.Body)
	}
	type orderView struct {
		ID           string
		Status       string
		CancelReason string `json:"cancel_reason"`
		Total        struct{ Amount int64 }
		History      []struct{ Status, Reason string }
	}
	var o orderView
	created.Decode(t, &o)
	replay := c.Do(t, order)
	var again struct{ ID string }
	replay.Decode(t, &again)
	if replay.Status != http.StatusOK || again.ID != o.ID {
		t.Errorf("retry with the same key = %d, order %q; want 200 with order %q", replay.Status, again.ID, o.ID)
	}

	// final polls order id until it is no longer PENDING, for 30s at most.
	final := func(id string) (orderView, []byte) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		var got orderView
		var body []byte
		poll.Until(ctx, t, "order "+id+" no longer PENDING", func() bool {
			resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders/" + id, Header: apitest.Bearer(alice)})
			if resp.Status != http.StatusOK {
				t.Fatalf("alice reads her order = %d %s", resp.Status, resp.Body)
			}
			got = orderView{}
			resp.Decode(t, &got)
			body = resp.Body
			return got.Status != "PENDING"
		})
		return got, body
	}
	if got, body := final(o.ID); got.Status != "CONFIRMED" || len(got.History) < 3 {
		t.Errorf("order with a good card ended %s; want CONFIRMED with the saga's steps in its history: %s", got.Status, body)
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
	if got, body := final(d.ID); got.Status != "CANCELLED" || got.CancelReason == "" {
		t.Errorf("order with a declining card ended %s (reason %q); want CANCELLED with a reason: %s", got.Status, got.CancelReason, body)
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

	// The hanging card: the PSP made the charge but never answered, so
	// payment could not tell and did not reply. The charge step timed out,
	// its compensation found the charge by its key and refunded it, then the
	// stock was released.
	got, body := final(hanging.ID)
	if got.Status != "CANCELLED" || got.CancelReason != "charge-payment: timed out" {
		t.Errorf("order with the hanging card ended %s (reason %q); want CANCELLED, charge-payment: timed out: %s", got.Status, got.CancelReason, body)
	}
	var history []string
	for _, h := range got.History {
		history = append(history, h.Status+" "+h.Reason)
	}
	wantHistory := []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
		"PENDING charge-payment started", "PENDING charge-payment timed out",
		"PENDING charge-payment compensating", "PENDING charge-payment compensated",
		"PENDING reserve-stock compensating", "PENDING reserve-stock compensated",
		"CANCELLED order cancelled: charge-payment: timed out"}
	if diff := cmp.Diff(wantHistory, history); diff != "" {
		t.Errorf("history of the order with the hanging card (-want +got):\n%s", diff)
	}
	c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/" + hangStock.SKU}).Decode(t, &after)
	if after.Available != hangStock.Available {
		t.Errorf("%s available after the hanging card's order was cancelled = %d, want the stock released back to %d", hangStock.SKU, after.Available, hangStock.Available)
	}
	captured, refunded := pspNet(t, psp, checkoutv1.ChargeKey(hanging.ID))
	if captured != got.Total.Amount || captured-refunded != 0 {
		t.Errorf("the PSP holds for the hanging card's order: captured %d, refunded %d; want its total %d captured and all of it refunded",
			captured, refunded, got.Total.Amount)
	}

	t.Run("bad inputs", func(t *testing.T) {
		apitest.RunBadInputs(t, c, apitest.BadInputs(apitest.Tokens{Customer: alice, Admin: admin}, apitest.Known{SKU: inStock.SKU}))
	})
	t.Run("product image", func(t *testing.T) { apitest.CheckProductImage(t, c, inStock.SKU) })
	t.Run("idempotency", func(t *testing.T) {
		apitest.CheckIdempotency(t, c, alice, "e2e-idempotency-"+t.Name(), inStock.SKU, hangStock.SKU)
	})
	t.Run("mutation probe", func(t *testing.T) {
		tok, known := apitest.Tokens{Customer: alice, Admin: admin}, apitest.Known{SKU: inStock.SKU, OrderID: o.ID}
		for _, req := range apitest.ValidRequests(tok, known) {
			t.Run(req.Method+" "+req.Path, func(t *testing.T) { apitest.Probe(t, c, req) })
		}
	})
}

// aliceShopping logs in as alice at gateway and returns a client of it,
// her token and the SKU of the first product listed.
func aliceShopping(t *testing.T, gateway string) (c *apitest.Client, token, sku string) {
	t.Helper()
	c = apitest.NewClient(t, gateway)
	token = c.Login(t, "alice", "alice-demo")
	var page struct{ Items []struct{ SKU string } }
	c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products?limit=3"}).Decode(t, &page)
	if len(page.Items) == 0 {
		t.Fatal("no products")
	}
	return c, token, page.Items[0].SKU
}

// pspNet reads the payment provider simulator's records at psp and returns
// how much the charge made under chargeKey captured and how much of it was
// refunded since.
func pspNet(t *testing.T, psp, chargeKey string) (captured, refunded int64) {
	t.Helper()
	var charges struct {
		Items []struct {
			ID, Status     string
			Amount         int64
			IdempotencyKey string `json:"idempotency_key"`
		}
	}
	var refunds struct {
		Items []struct {
			ChargeID string `json:"charge_id"`
			Amount   int64
		}
	}
	getJSON(t, psp+"/v1/admin/charges", &charges)
	getJSON(t, psp+"/v1/admin/refunds", &refunds)
	ids := map[string]bool{}
	for _, ch := range charges.Items {
		if ch.IdempotencyKey == chargeKey && ch.Status == "succeeded" {
			captured += ch.Amount
			ids[ch.ID] = true
		}
	}
	for _, r := range refunds.Items {
		if ids[r.ChargeID] {
			refunded += r.Amount
		}
	}
	return captured, refunded
}

// getJSON decodes the JSON body of GET url, which must answer 200, into out.
func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %s, want 200", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
