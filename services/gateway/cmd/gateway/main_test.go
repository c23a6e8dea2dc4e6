package main

import (
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// startGateway runs the gateway in-process in front of fake services.
func startGateway(t *testing.T) *servicetest.Service {
	t.Helper()
	return startGatewayWith(t, nil)
}

// startGatewayWith starts it with the variables of extra too.
func startGatewayWith(t *testing.T, extra map[string]string) *servicetest.Service {
	t.Helper()
	inventory := httptest.NewServer(fakeInventory())
	orders := httptest.NewServer(fakeOrders())
	psp := httptest.NewServer(fakePSP())
	t.Cleanup(func() { inventory.Close(); orders.Close(); psp.Close() })
	env := map[string]string{
		"GATEWAY_HTTP_ADDR":     servicetest.FreeAddr(t),
		"GATEWAY_INVENTORY_URL": inventory.URL,
		"GATEWAY_ORDER_URL":     orders.URL,
		"GATEWAY_PSP_URL":       psp.URL,
	}
	maps.Copy(env, extra)
	return servicetest.Start(t, run, env, "GATEWAY_HTTP_ADDR")
}

// TestRun wires the gateway in-process behind a real listener and walks the
// public API; every answer is checked against the OpenAPI document.
func TestRun(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)

	for _, path := range []string{"/healthz", "/readyz", "/api/v1/openapi.json"} {
		resp, err := http.Get(svc.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
	}

	alice := apitest.Bearer(c.Login(t, "alice", "alice-demo"))
	bob := apitest.Bearer(c.Login(t, "bob", "bob-demo"))
	admin := apitest.Bearer(c.Login(t, "admin", "admin-demo"))

	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products?limit=10&in_stock=true&q=mug"}); resp.Status != http.StatusOK {
		t.Errorf("list products = %d %s", resp.Status, resp.Body)
	}
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products/TEE-LOGO"}); resp.Status != http.StatusOK {
		t.Errorf("get product = %d %s", resp.Status, resp.Body)
	}

	body := `{"card_number":"4242424242424242","lines":[{"sku":"MUG-CLASSIC","quantity":2},{"sku":"TEE-LOGO","quantity":1}]}`
	headers := map[string]string{"Authorization": alice["Authorization"], "Idempotency-Key": "order-1"}
	created := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders", Header: headers, Body: body})
	if created.Status != http.StatusAccepted {
		t.Fatalf("create order = %d %s", created.Status, created.Body)
	}
	var order struct {
		ID    string
		Total struct{ Amount int64 }
	}
	created.Decode(t, &order)
	if got, want := created.Header.Get("Location"), "/api/v1/orders/"+order.ID; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if order.Total.Amount != 2*1200+2500 {
		t.Errorf("total = %d, want the catalog prices times quantities, %d", order.Total.Amount, 2*1200+2500)
	}

	tests := []struct {
		name string
		req  apitest.Request
		want int
	}{
		{"replay returns the same order", apitest.Request{Method: "POST", Path: "/api/v1/orders", Header: headers, Body: body}, 200},
		{"same key, other body", apitest.Request{Method: "POST", Path: "/api/v1/orders", Header: headers, Body: `{"card_number":"4242424242424242","lines":[{"sku":"TEE-LOGO","quantity":3}]}`}, 409},
		{"owner reads it", apitest.Request{Method: "GET", Path: "/api/v1/orders/" + order.ID, Header: alice}, 200},
		{"admin reads it", apitest.Request{Method: "GET", Path: "/api/v1/orders/" + order.ID, Header: admin}, 200},
		{"another customer does not see it", apitest.Request{Method: "GET", Path: "/api/v1/orders/" + order.ID, Header: bob}, 404},
		{"owner lists orders", apitest.Request{Method: "GET", Path: "/api/v1/orders?limit=5", Header: alice}, 200},
		{"admin adjusts stock", apitest.Request{Method: "POST", Path: "/api/v1/admin/products/TEE-LOGO/stock-adjustments", Header: admin, Body: `{"delta":5}`}, 200},
		{"admin reads faults", apitest.Request{Method: "GET", Path: "/api/v1/admin/psp/faults", Header: admin}, 200},
		{"admin sets faults", apitest.Request{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{"latency":"250ms","failure_rate":0.5}`}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := c.Do(t, tt.req); resp.Status != tt.want {
				t.Errorf("status = %d, want %d; body %s", resp.Status, tt.want, resp.Body)
			}
		})
	}

	listed := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders", Header: bob})
	if strings.Contains(string(listed.Body), order.ID) {
		t.Errorf("bob's order list shows alice's order: %s", listed.Body)
	}

	if err := svc.Stop(); err != nil {
		t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
	}
	if logs := svc.Logs(); !strings.Contains(logs, `"msg":"http server stopped"`) {
		t.Errorf("logs do not show a graceful HTTP stop:\n%s", logs)
	}
}

func TestIdempotency(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)
	apitest.CheckIdempotency(t, c, c.Login(t, "alice", "alice-demo"), "idem-1", "MUG-CLASSIC", "TEE-LOGO")
}

// TestBadInputs sends the table of bad inputs: each must get its 4xx problem.
func TestBadInputs(t *testing.T) {
	svc := startGateway(t)
	c := apitest.NewClient(t, svc.URL)
	tok := apitest.Tokens{Customer: c.Login(t, "alice", "alice-demo"), Admin: c.Login(t, "admin", "admin-demo")}
	apitest.RunBadInputs(t, c, apitest.BadInputs(tok, apitest.Known{SKU: "TEE-LOGO"}))
}

func TestUpstreamDownIsABadGateway(t *testing.T) {
	env := map[string]string{
		"GATEWAY_HTTP_ADDR":     servicetest.FreeAddr(t),
		"GATEWAY_INVENTORY_URL": "http://" + servicetest.FreeAddr(t), // nothing listens there
	}
	svc := servicetest.Start(t, run, env, "GATEWAY_HTTP_ADDR")
	c := apitest.NewClient(t, svc.URL)
	if resp := c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/products"}); resp.Status != http.StatusBadGateway {
		t.Errorf("status = %d, want 502; body %s", resp.Status, resp.Body)
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	servicetest.CheckConfigRejected(t, run, map[string]string{
		"GATEWAY_HTTP_ADDR":        "not valid",
		"GATEWAY_SHUTDOWN_TIMEOUT": "not valid",
		"GATEWAY_LOG_LEVEL":        "not valid",
		"GATEWAY_INVENTORY_URL":    "ftp://x",
		"GATEWAY_ORDER_URL":        "not a url",
		"GATEWAY_PSP_URL":          "http//x",
		"GATEWAY_UPSTREAM_TIMEOUT": "0",
		"GATEWAY_RETRY_RATIO":      "1.5",
		"GATEWAY_RETRY_RESERVE":    "0",
		"GATEWAY_JWT_SECRET":       "too-short",
		"GATEWAY_TOKEN_TTL":        "-1h",
		"GATEWAY_BREAKER_RULES":    `{"order": {"errorRatio": 2}}`,
	})
}

// TestOpenBreakerAnswers503 checks that once the order service's breaker
// has opened on its failures, the gateway answers at once with a 503
// problem and a Retry-After of the rest of the open period, without
// calling the service.
func TestOpenBreakerAnswers503(t *testing.T) {
	var calls atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		problem.Write(w, problem.New(http.StatusBadGateway, "its database is down"))
	}))
	inventory := httptest.NewServer(fakeInventory())
	t.Cleanup(func() { failing.Close(); inventory.Close() })
	svc := servicetest.Start(t, run, map[string]string{
		"GATEWAY_HTTP_ADDR":     servicetest.FreeAddr(t),
		"GATEWAY_INVENTORY_URL": inventory.URL,
		"GATEWAY_ORDER_URL":     failing.URL,
		"GATEWAY_BREAKER_RULES": `{"order": {"minRequests": 2, "errorRatio": 1, "openFor": "30s"}}`,
	}, "GATEWAY_HTTP_ADDR")
	c := apitest.NewClient(t, svc.URL)
	alice := apitest.Bearer(c.Login(t, "alice", "alice-demo"))
	get := apitest.Request{Method: "GET", Path: "/api/v1/orders/01890000-0000-7000-8000-000000000999", Header: alice}
	for range 2 {
		if resp := c.Do(t, get); resp.Status == http.StatusServiceUnavailable {
			t.Fatalf("answer %d before the breaker opened", resp.Status)
		}
	}
	resp := c.Do(t, get)
	retryAfter, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.Status != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != problem.ContentType || retryAfter < 29 || retryAfter > 30 {
		t.Errorf("answer with the breaker open = %d %s, Retry-After %q; want a 503 problem, Retry-After 30",
			resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Retry-After"))
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("the order service got %d calls, want 2: none once the breaker opened", got)
	}
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "GATEWAY_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}

func TestRetryBudgetFromEnvironment(t *testing.T) {
	env := map[string]string{"GATEWAY_RETRY_RATIO": "0.25", "GATEWAY_RETRY_RESERVE": "3"}
	cfg, err := loadConfig(func(k string) string { return env[k] })
	if err != nil || cfg.RetryRatio != 0.25 || cfg.RetryReserve != 3 {
		t.Errorf("loadConfig = ratio %v, reserve %d, %v; want 0.25, 3", cfg.RetryRatio, cfg.RetryReserve, err)
	}
	cfg, err = loadConfig(func(string) string { return "" })
	if err != nil || cfg.RetryRatio != 0.1 || cfg.RetryReserve != 10 {
		t.Errorf("loadConfig with nothing set = ratio %v, reserve %d, %v; want 0.1, 10", cfg.RetryRatio, cfg.RetryReserve, err)
	}
}
