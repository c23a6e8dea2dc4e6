// Package apitest drives the gateway's public API in tests: a client that
// checks every answer against the OpenAPI document, and the table of bad
// inputs every endpoint must answer with a 4xx problem. The gateway's own
// tests run it against fake services; the end-to-end test runs the same
// table against the real stack.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/api"
)

// Client calls a running gateway and fails the test when an answer breaks
// the OpenAPI document.
type Client struct {
	// BaseURL is the gateway's, e.g. "http://127.0.0.1:8080".
	BaseURL   string
	validator *api.Validator
}

// NewClient returns a Client for the gateway at baseURL.
func NewClient(t testing.TB, baseURL string) *Client {
	t.Helper()
	doc, err := api.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.NewValidator(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{BaseURL: baseURL, validator: v}
}

// Response is a complete answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Decode unmarshals the body into v, failing the test if it cannot.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %q: %v", r.Body, err)
	}
}

// Request describes one call. Body is sent as is; a non-empty Body gets
// Content-Type application/json unless Header sets one ("" removes it).
type Request struct {
	Method string
	Path   string // under the base URL, e.g. "/api/v1/products?limit=5"
	Header map[string]string
	Body   string
}

// Do sends req and checks the answer against the OpenAPI document.
func (c *Client) Do(t testing.TB, req Request) Response {
	t.Helper()
	var body io.Reader
	if req.Body != "" {
		body = strings.NewReader(req.Body)
	}
	hr, err := http.NewRequest(req.Method, c.BaseURL+req.Path, body)
	if err != nil {
		t.Fatalf("build %s %s: %v", req.Method, req.Path, err)
	}
	if req.Body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.Header {
		if v == "" {
			hr.Header.Del(k)
		} else {
			hr.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", req.Method, req.Path, err)
	}
	// Validate against the request as the gateway saw it (body drained is fine:
	// only responses are validated).
	if err := c.validator.CheckResponse(context.Background(), hr, resp.StatusCode, resp.Header, b); err != nil {
		t.Errorf("answer breaks the OpenAPI document: %v\nbody: %s", err, b)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Login logs in and returns the access token.
func (c *Client) Login(t testing.TB, username, password string) string {
	t.Helper()
	resp := c.Do(t, Request{Method: "POST", Path: "/api/v1/login",
		Body: `{"username":` + quote(username) + `,"password":` + quote(password) + `}`})
	if resp.Status != http.StatusOK {
		t.Fatalf("login %s: status %d: %s", username, resp.Status, resp.Body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	resp.Decode(t, &tok)
	return tok.AccessToken
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Bearer returns the Authorization header for token.
func Bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// GoodCard is the payment provider simulator's test card that is always charged.
const GoodCard = "4242424242424242"

// Case is one bad input and the status the gateway must answer it with.
type Case struct {
	Name string
	Request
	Want int
}

// Tokens are what BadInputs needs to reach the authenticated routes.
type Tokens struct {
	Customer, Admin string
}

// Known names data the stack has, so cases can reach past validation.
type Known struct {
	// SKU exists and has less than 1,000,000 units available.
	SKU string
	// OrderID is an order of the customer's; "" if there is none.
	OrderID string
}

// BadInputs returns, per endpoint, inputs that must be answered with the
// given 4xx status and a problem document, never a 5xx.
func BadInputs(tok Tokens, known Known) []Case {
	cust, admin := Bearer(tok.Customer), Bearer(tok.Admin)
	with := func(h map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range h {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	order := with(cust, "Idempotency-Key", "bad-input-key")
	huge := `{"username":"` + strings.Repeat("a", 20<<10) + `","password":"x"}`
	var lines51 strings.Builder
	lines51.WriteString(`{"lines":[`)
	for i := range 51 {
		if i > 0 {
			lines51.WriteString(",")
		}
		lines51.WriteString(`{"sku":"SKU-` + strings.Repeat("X", i%5+1) + `-` + string(rune('A'+i%26)) + `","quantity":1}`)
	}
	lines51.WriteString(`]}`)
	post := func(name, path string, h map[string]string, body string, want int) Case {
		return Case{Name: name, Request: Request{Method: "POST", Path: path, Header: h, Body: body}, Want: want}
	}
	get := func(name, path string, h map[string]string, want int) Case {
		return Case{Name: name, Request: Request{Method: "GET", Path: path, Header: h}, Want: want}
	}
	line := func(sku, qty string) string {
		return `{"card_number":"` + GoodCard + `","lines":[{"sku":"` + sku + `","quantity":` + qty + `}]}`
	}
	ok := line(known.SKU, "1")
	return []Case{
		// POST /login
		post("login: no content type", "/api/v1/login", map[string]string{"Content-Type": ""}, `{"username":"a","password":"b"}`, 415),
		post("login: text/plain", "/api/v1/login", map[string]string{"Content-Type": "text/plain"}, `{"username":"a","password":"b"}`, 415),
		post("login: malformed JSON", "/api/v1/login", nil, `{"username":`, 400),
		post("login: empty body", "/api/v1/login", map[string]string{"Content-Type": "application/json"}, ``, 400),
		post("login: two JSON values", "/api/v1/login", nil, `{"username":"a","password":"b"}{}`, 400),
		post("login: missing password", "/api/v1/login", nil, `{"username":"alice"}`, 422),
		post("login: number as username", "/api/v1/login", nil, `{"username":5,"password":"b"}`, 422),
		post("login: unknown field", "/api/v1/login", nil, `{"username":"a","password":"b","admin":true}`, 422),
		post("login: username too long", "/api/v1/login", nil, `{"username":"`+strings.Repeat("a", 101)+`","password":"b"}`, 422),
		post("login: huge body", "/api/v1/login", nil, huge, 413),
		post("login: wrong password", "/api/v1/login", nil, `{"username":"alice","password":"wrong"}`, 401),
		post("login: unicode user", "/api/v1/login", nil, `{"username":"ålïcé\u0000\ud83d\ude00","password":"x"}`, 401),
		post("login: array body", "/api/v1/login", nil, `[]`, 422),

		// GET /products
		get("products: limit 0", "/api/v1/products?limit=0", nil, 400),
		get("products: limit 101", "/api/v1/products?limit=101", nil, 400),
		get("products: limit not a number", "/api/v1/products?limit=ten", nil, 400),
		get("products: limit overflows", "/api/v1/products?limit=99999999999999999999", nil, 400),
		get("products: cursor with bad characters", "/api/v1/products?cursor=%21%21", nil, 400),
		get("products: cursor too long", "/api/v1/products?cursor="+strings.Repeat("A", 513), nil, 400),
		get("products: forged cursor", "/api/v1/products?cursor=Zm9yZ2Vk", nil, 400),
		get("products: in_stock not a bool", "/api/v1/products?in_stock=maybe", nil, 400),
		get("products: q too long", "/api/v1/products?q="+strings.Repeat("q", 101), nil, 400),
		get("products: q not UTF-8", "/api/v1/products?q=%ff%fe", nil, 400),

		// GET /products/{sku}
		get("product: lower-case sku", "/api/v1/products/mug", nil, 404),
		get("product: unknown sku", "/api/v1/products/NO-SUCH-PRODUCT", nil, 404),
		get("product: sku too long", "/api/v1/products/"+strings.Repeat("A", 65), nil, 404),
		get("product: unicode sku", "/api/v1/products/M%C3%9CG", nil, 404),

		// POST /orders
		post("order: no token", "/api/v1/orders", map[string]string{"Idempotency-Key": "k"}, ok, 401),
		post("order: malformed token", "/api/v1/orders", with(order, "Authorization", "Bearer abc.def.ghi"), ok, 401),
		post("order: basic auth", "/api/v1/orders", with(order, "Authorization", "Basic YWxpY2U6YWxpY2UtZGVtbw=="), ok, 401),
		post("order: admin may not order", "/api/v1/orders", with(admin, "Idempotency-Key", "k"), ok, 403),
		post("order: no Idempotency-Key", "/api/v1/orders", cust, ok, 400),
		post("order: Idempotency-Key too long", "/api/v1/orders", with(cust, "Idempotency-Key", strings.Repeat("k", 256)), ok, 400),
		post("order: text/plain", "/api/v1/orders", with(order, "Content-Type", "text/plain"), ok, 415),
		post("order: empty body", "/api/v1/orders", with(order, "Content-Type", "application/json"), ``, 400),
		post("order: no lines", "/api/v1/orders", order, `{}`, 422),
		post("order: empty lines", "/api/v1/orders", order, `{"lines":[]}`, 422),
		post("order: lines not an array", "/api/v1/orders", order, `{"lines":{"sku":"A"}}`, 422),
		post("order: 51 lines", "/api/v1/orders", order, lines51.String(), 422),
		post("order: zero quantity", "/api/v1/orders", order, line(known.SKU, "0"), 422),
		post("order: negative quantity", "/api/v1/orders", order, line(known.SKU, "-1"), 422),
		post("order: quantity over the limit", "/api/v1/orders", order, line(known.SKU, "1001"), 422),
		post("order: quantity overflows int64", "/api/v1/orders", order, line(known.SKU, "1e30"), 422),
		post("order: quantity as string", "/api/v1/orders", order, line(known.SKU, `"2"`), 422),
		post("order: fractional quantity", "/api/v1/orders", order, line(known.SKU, "1.5"), 422),
		post("order: unknown sku", "/api/v1/orders", order, line("NO-SUCH-PRODUCT", "1"), 422),
		post("order: lower-case sku", "/api/v1/orders", order, line("mug", "1"), 422),
		post("order: unicode sku", "/api/v1/orders", order, line("MÜG", "1"), 422),
		post("order: empty sku", "/api/v1/orders", order, line("", "1"), 422),
		post("order: duplicate lines", "/api/v1/orders", order, `{"card_number":"`+GoodCard+`","lines":[{"sku":"`+known.SKU+`","quantity":1},{"sku":"`+known.SKU+`","quantity":2}]}`, 422),
		post("order: unknown field", "/api/v1/orders", order, `{"card_number":"`+GoodCard+`","lines":[{"sku":"`+known.SKU+`","quantity":1,"price":0}]}`, 422),
		post("order: no card number", "/api/v1/orders", order, `{"lines":[{"sku":"`+known.SKU+`","quantity":1}]}`, 422),
		post("order: card number fails the check digit", "/api/v1/orders", order, `{"card_number":"4242424242424241","lines":[{"sku":"`+known.SKU+`","quantity":1}]}`, 422),
		post("order: card number with spaces", "/api/v1/orders", order, `{"card_number":"4242 4242 4242 4242","lines":[{"sku":"`+known.SKU+`","quantity":1}]}`, 422),
		post("order: card number as a JSON number", "/api/v1/orders", order, `{"card_number":4242424242424242,"lines":[{"sku":"`+known.SKU+`","quantity":1}]}`, 422),
		post("order: huge body", "/api/v1/orders", order, `{"lines":[{"sku":"`+strings.Repeat("A", 20<<10)+`","quantity":1}]}`, 413),

		// GET /orders and /orders/{id}
		get("orders: no token", "/api/v1/orders", nil, 401),
		get("orders: admin has no own orders", "/api/v1/orders", admin, 403),
		get("orders: limit 0", "/api/v1/orders?limit=0", cust, 400),
		get("orders: forged cursor", "/api/v1/orders?cursor=Zm9yZ2Vk", cust, 400),
		get("order: no token", "/api/v1/orders/01890000-0000-7000-8000-000000000000", nil, 401),
		get("order: unknown id", "/api/v1/orders/01890000-0000-7000-8000-000000000000", cust, 404),
		get("order: id with dots", "/api/v1/orders/a.b", cust, 404),

		// POST /admin/products/{sku}/stock-adjustments
		post("stock: customer may not", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", cust, `{"delta":1}`, 403),
		post("stock: no token", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", nil, `{"delta":1}`, 401),
		post("stock: zero delta", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", admin, `{"delta":0}`, 422),
		post("stock: missing delta", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", admin, `{}`, 422),
		post("stock: delta too big", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", admin, `{"delta":1000001}`, 422),
		post("stock: delta as string", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", admin, `{"delta":"1"}`, 422),
		post("stock: below zero", "/api/v1/admin/products/"+known.SKU+"/stock-adjustments", admin, `{"delta":-1000000}`, 409),
		post("stock: unknown sku", "/api/v1/admin/products/NO-SUCH-PRODUCT/stock-adjustments", admin, `{"delta":1}`, 404),

		// PUT /admin/psp/faults
		{Name: "faults: customer may not", Request: Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: cust, Body: `{"latency":"0s","failure_rate":0}`}, Want: 403},
		{Name: "faults: latency not a duration", Request: Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{"latency":"fast","failure_rate":0}`}, Want: 422},
		{Name: "faults: latency too long", Request: Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{"latency":"31s","failure_rate":0}`}, Want: 422},
		{Name: "faults: rate above 1", Request: Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{"latency":"0s","failure_rate":2}`}, Want: 422},
		{Name: "faults: negative rate", Request: Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{"latency":"0s","failure_rate":-0.1}`}, Want: 422},
		{Name: "faults: empty object", Request: Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{}`}, Want: 422},
	}
}

// RunBadInputs sends every case and checks it gets exactly its status and a
// problem document whose instance is the public path asked for.
func RunBadInputs(t *testing.T, c *Client, cases []Case) {
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			resp := c.Do(t, tc.Request)
			if resp.Status != tc.Want {
				t.Errorf("status = %d, want %d; body %s", resp.Status, tc.Want, resp.Body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
				t.Errorf("Content-Type = %q, want %q", ct, problem.ContentType)
			}
			var p problem.Details
			if err := json.NewDecoder(bytes.NewReader(resp.Body)).Decode(&p); err != nil || p.Status != resp.Status {
				t.Errorf("body %s is not a problem with status %d", resp.Body, resp.Status)
			}
			if u, err := url.Parse(tc.Path); err != nil || p.Instance != u.Path {
				t.Errorf("instance = %q, want the public path %q", p.Instance, tc.Path)
			}
		})
	}
}

// CheckProductImage fetches the image the catalog advertises for sku: it
// must be an SVG the browser may cache.
func CheckProductImage(t *testing.T, c *Client, sku string) {
	t.Helper()
	var p struct {
		ImageRef string `json:"image_ref"`
	}
	c.Do(t, Request{Method: "GET", Path: "/api/v1/products/" + sku}).Decode(t, &p)
	resp, err := http.Get(c.BaseURL + p.ImageRef)
	if err != nil {
		t.Fatalf("GET %s: %v", p.ImageRef, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml" ||
		!bytes.HasPrefix(b, []byte("<svg ")) || resp.Header.Get("Cache-Control") == "" {
		t.Errorf("GET %q (image_ref of %s) = %d %q, Cache-Control %q, %d bytes (%v); want a cacheable SVG",
			p.ImageRef, sku, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"), len(b), err)
	}
}

// CheckIdempotency places an order of one unit each of two SKUs under a new
// key, then checks
// the rule of POST /orders: the same lines in another order return the same
// order (200), the same key with another card is a 409.
func CheckIdempotency(t *testing.T, c *Client, customerToken, key, skuA, skuB string) {
	t.Helper()
	h := map[string]string{"Authorization": "Bearer " + customerToken, "Idempotency-Key": key}
	body := func(card, first, second string) string {
		return `{"card_number":"` + card + `","lines":[{"sku":"` + first + `","quantity":1},{"sku":"` + second + `","quantity":1}]}`
	}
	swapped := `{"card_number":"` + GoodCard + `","lines":[{"sku":"` + skuB + `","quantity":1},{"sku":"` + skuA + `","quantity":1}]}`
	first := c.Do(t, Request{Method: "POST", Path: "/api/v1/orders", Header: h, Body: body(GoodCard, skuA, skuB)})
	if first.Status != http.StatusAccepted {
		t.Fatalf("first order = %d %s, want 202", first.Status, first.Body)
	}
	var want, got struct{ ID string }
	first.Decode(t, &want)
	replay := c.Do(t, Request{Method: "POST", Path: "/api/v1/orders", Header: h, Body: swapped})
	if replay.Status != http.StatusOK {
		t.Fatalf("same lines in another order = %d %s, want 200 with the first order", replay.Status, replay.Body)
	}
	if replay.Decode(t, &got); got.ID != want.ID {
		t.Errorf("same lines in another order returned order %s, want %s", got.ID, want.ID)
	}
	const otherCard = "4000000000000002" // the PSP simulator's declined card: a valid number
	if other := c.Do(t, Request{Method: "POST", Path: "/api/v1/orders", Header: h, Body: body(otherCard, skuA, skuB)}); other.Status != http.StatusConflict {
		t.Errorf("same key, another card = %d %s, want 409", other.Status, other.Body)
	}
}
