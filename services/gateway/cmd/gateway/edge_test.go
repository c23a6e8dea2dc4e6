package main

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// Tests of the edge's promises, each against the gateway run in-process
// in front of the fakes: bounded bodies, public problems, images, access
// logs and the request id.

func TestBodiesOverTheLimitAre413OverRealSockets(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)
	alice := "Bearer " + c.Login(t, "alice", "alice-demo")
	addr := strings.TrimPrefix(svc.URL, "http://")
	routes := []struct {
		path   string
		header map[string]string
	}{
		{"/api/v1/login", nil},
		{"/api/v1/orders", map[string]string{"Authorization": alice, "Idempotency-Key": "big"}},
	}
	uploads := []struct {
		name            string
		chunked, expect bool
		wantInterim     []int
	}{
		{"declared", false, false, nil},
		{"declared, 100-continue", false, true, nil},
		{"chunked", true, false, nil},
		{"chunked, 100-continue", true, true, []int{100}}, // its size is known only by reading it
	}
	for _, route := range routes {
		for _, size := range []int64{600 << 10, 10 << 20} {
			for _, up := range uploads {
				t.Run(fmt.Sprintf("%s %s %d bytes", route.path, up.name, size), func(t *testing.T) {
					got := servicetest.Upload{Method: "POST", Path: route.path, Header: route.header,
						Size: size, Chunked: up.chunked, ExpectContinue: up.expect}.Send(t, addr)
					if got.Err != nil {
						t.Fatalf("no answer: %v", got.Err)
					}
					var p problem.Details
					if got.Status != 413 || json.Unmarshal(got.Body, &p) != nil || p.Status != 413 || p.Instance != route.path {
						t.Errorf("answer = %d %s, want a 413 problem with instance %s", got.Status, got.Body, route.path)
					}
					if !slices.Equal(got.Interim, up.wantInterim) {
						t.Errorf("interim answers = %v, want %v", got.Interim, up.wantInterim)
					}
					if !got.Close || !errors.Is(got.AfterAnswer, io.EOF) {
						t.Errorf("after the answer: %v, want a clean close (EOF)", got.AfterAnswer)
					}
				})
			}
		}
	}
}

func TestProblemsNameThePublicRoute(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)
	alice := apitest.Bearer(c.Login(t, "alice", "alice-demo"))
	const id = "01890000-0000-7000-8000-000000000999"
	tests := []struct {
		name string
		req  apitest.Request
		want int
	}{
		{"relayed from the order service", apitest.Request{Method: "GET", Path: "/api/v1/orders/" + id, Header: alice}, 404},
		{"refused by the contract", apitest.Request{Method: "GET", Path: "/api/v1/orders?limit=0", Header: alice}, 400},
		{"refused by authentication", apitest.Request{Method: "GET", Path: "/api/v1/orders/" + id}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := c.Do(t, tt.req)
			var p problem.Details
			resp.Decode(t, &p)
			public := strings.Split(tt.req.Path, "?")[0]
			if resp.Status != tt.want || p.Instance != public {
				t.Errorf("answer = %d with instance %q, want %d with %q", resp.Status, p.Instance, tt.want, public)
			}
			if body := strings.ReplaceAll(string(resp.Body), "/api/v1/", ""); strings.Contains(body, "/v1/") || strings.Contains(body, "127.0.0.1") {
				t.Errorf("the problem names an internal path or host: %s", resp.Body)
			}
		})
	}
}

func TestProductImagesAreServedWhereTheCatalogSaysTheyAre(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)
	var product struct {
		ImageRef string `json:"image_ref"`
	}
	c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/MUG-CLASSIC"}).Decode(t, &product)
	if product.ImageRef == "" {
		t.Fatal("the catalog advertises no image for MUG-CLASSIC")
	}

	resp, body := get(t, svc.URL+product.ImageRef, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Fatalf("GET %s = %d %s, want 200 image/svg+xml", product.ImageRef, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var svg struct {
		XMLName xml.Name
		Texts   []string `xml:"text"`
	}
	if err := xml.Unmarshal(body, &svg); err != nil || svg.XMLName.Local != "svg" || !slices.Contains(svg.Texts, "Classic mug") {
		t.Errorf("body is not an SVG naming the product (%v): %s", err, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("Cache-Control = %q, want a max-age", cc)
	}
	etag := resp.Header.Get("ETag")
	if again, _ := get(t, svc.URL+product.ImageRef, map[string]string{"If-None-Match": etag}); etag == "" || again.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation with ETag %q = %d, want 304", etag, again.StatusCode)
	}

	for _, path := range []string{"/images/NO-SUCH.svg", "/images/TEE-LOGO.svg" /* advertises none */, "/images/MUG-CLASSIC.png", "/images/mug.svg"} {
		if resp, body := get(t, svc.URL+path, nil); resp.StatusCode != 404 || resp.Header.Get("Content-Type") != problem.ContentType {
			t.Errorf("GET %s = %d %s, want a 404 problem", path, resp.StatusCode, body)
		}
	}
}

func get(t *testing.T, url string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestAccessLogsAndRequestID checks the gateway logs one line per request
// with what an operator needs and no secret, and passes its request id to
// the service it calls.
func TestAccessLogsAndRequestID(t *testing.T) {
	var mu sync.Mutex
	var seen []string // X-Request-Id of each request the order service got
	orders := fakeOrders()
	orderSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("X-Request-Id"))
		mu.Unlock()
		orders.ServeHTTP(w, r)
	}))
	inventory := httptest.NewServer(fakeInventory())
	t.Cleanup(func() { orderSrv.Close(); inventory.Close() })
	svc := servicetest.Start(t, run, map[string]string{
		"GATEWAY_HTTP_ADDR":     servicetest.FreeAddr(t),
		"GATEWAY_INVENTORY_URL": inventory.URL,
		"GATEWAY_ORDER_URL":     orderSrv.URL,
	}, "GATEWAY_HTTP_ADDR")
	c := apitest.NewClient(t, svc.URL)
	token := c.Login(t, "alice", "alice-demo")

	created := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
		Header: map[string]string{"Authorization": "Bearer " + token, "Idempotency-Key": "log-1", "X-Request-Id": "req-from-client-1"},
		Body:   `{"card_number":"` + apitest.GoodCard + `","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`})
	if created.Status != http.StatusAccepted {
		t.Fatalf("create = %d %s", created.Status, created.Body)
	}
	if got := created.Header.Get("X-Request-Id"); got != "req-from-client-1" {
		t.Errorf("answer's X-Request-Id = %q, want the client's", got)
	}
	mu.Lock()
	gotSeen := slices.Clone(seen)
	mu.Unlock()
	if !slices.Equal(gotSeen, []string{"req-from-client-1"}) {
		t.Errorf("the order service saw X-Request-Id %q, want the client's", gotSeen)
	}
	generated := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products"}).Header.Get("X-Request-Id")
	if generated == "" {
		t.Error("a request without an id got none back")
	}

	var lines []map[string]any
	for _, l := range strings.Split(svc.Logs(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == "http request" && m["route"] != "/readyz" {
			lines = append(lines, m)
		}
	}
	want := []map[string]any{
		{"method": "POST", "route": "/api/v1/login", "status": 200.0},
		{"method": "POST", "route": "/api/v1/orders", "status": 202.0, "customer_id": "cus_alice", "request_id": "req-from-client-1"},
		{"method": "GET", "route": "/api/v1/products", "status": 200.0, "request_id": generated},
	}
	if len(lines) != len(want) {
		t.Fatalf("access log lines = %d, want %d:\n%s", len(lines), len(want), svc.Logs())
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
		if b, ok := lines[i]["bytes"].(float64); !ok || b <= 0 {
			t.Errorf("line %d: bytes = %v, want the answer's size", i, lines[i]["bytes"])
		}
	}
	for _, secret := range []string{token, "alice-demo", apitest.GoodCard} {
		if strings.Contains(svc.Logs(), secret) {
			t.Errorf("the logs hold a secret %q:\n%s", secret, svc.Logs())
		}
	}
}
