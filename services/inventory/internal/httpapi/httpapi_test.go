package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/inventory/internal/db/dbtest"
	"github.com/microshop/microshop/services/inventory/internal/httpapi"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
	"github.com/microshop/microshop/services/inventory/internal/inventory/inventorytest"
)

// newAPI returns the API, routed as the service routes it, over a fresh
// SQLite store holding A (1 available), B (none) and C (5).
func newAPI(t testing.TB) *gin.Engine {
	t.Helper()
	store := dbtest.SQLite().NewStore(t,
		inventorytest.Product("A", 1), inventorytest.Product("B", 0), inventorytest.Product("C", 5))
	svc := inventory.NewService(store, time.Now, time.Minute)
	log := slog.New(slog.DiscardHandler)
	router := httpserver.NewRouter(log, health.New(0))
	httpapi.Register(router, svc, log)
	return router
}

// call sends a request with a JSON body (none if body is "") to h.
func call(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// productJSON is a product of newAPI's catalog as the API must show it.
func productJSON(sku string, available int) string {
	return `{"sku":"` + sku + `","name":"Product ` + sku + `","description":"A test product.",` +
		`"price":{"amount":999,"currency":"EUR"},"image_ref":"/images/` + sku + `.svg","available":` + strconv.Itoa(available) + `}`
}

func TestAPI(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		target     string
		body       string
		wantStatus int
		wantBody   string // JSON; for a problem, the field names at fault
	}{
		{"list", "GET", "/v1/products", "", 200,
			`{"items":[` + productJSON("A", 1) + `,` + productJSON("B", 0) + `,` + productJSON("C", 5) + `]}`},
		{"list in stock", "GET", "/v1/products?in_stock=true", "", 200,
			`{"items":[` + productJSON("A", 1) + `,` + productJSON("C", 5) + `]}`},
		{"list not only in stock", "GET", "/v1/products?in_stock=false&limit=100", "", 200,
			`{"items":[` + productJSON("A", 1) + `,` + productJSON("B", 0) + `,` + productJSON("C", 5) + `]}`},
		{"search", "GET", "/v1/products?q=PRODUCT+b", "", 200, `{"items":[` + productJSON("B", 0) + `]}`},
		{"search finds nothing", "GET", "/v1/products?q=teapot", "", 200, `{"items":[]}`},
		{"limit 0", "GET", "/v1/products?limit=0", "", 400, `["limit"]`},
		{"limit 101", "GET", "/v1/products?limit=101", "", 400, `["limit"]`},
		{"limit not a number", "GET", "/v1/products?limit=ten", "", 400, `["limit"]`},
		{"limit empty", "GET", "/v1/products?limit=", "", 400, `["limit"]`},
		{"in_stock not a boolean", "GET", "/v1/products?in_stock=yes", "", 400, `["in_stock"]`},
		{"q too long", "GET", "/v1/products?q=" + strings.Repeat("x", 101), "", 400, `["q"]`},
		{"q with a control character", "GET", "/v1/products?q=a%00", "", 400, `["q"]`},
		{"q not UTF-8", "GET", "/v1/products?q=%FF", "", 400, `["q"]`},
		{"cursor not ours", "GET", "/v1/products?cursor=abc", "", 400, `["cursor"]`},
		{"every parameter bad", "GET", "/v1/products?limit=-1&in_stock=1&q=%00", "", 400, `["limit","in_stock","q"]`},

		{"get", "GET", "/v1/products/C", "", 200, productJSON("C", 5)},
		{"get unknown", "GET", "/v1/products/D", "", 404, `[]`},
		{"get not a SKU", "GET", "/v1/products/c%20d", "", 404, `[]`},

		{"restock", "POST", "/v1/products/A/stock-adjustments", `{"delta": 4}`, 200, `{"sku":"A","available":5,"reserved":0}`},
		{"shrink to zero", "POST", "/v1/products/A/stock-adjustments", `{"delta": -1}`, 200, `{"sku":"A","available":0,"reserved":0}`},
		{"shrink below zero", "POST", "/v1/products/A/stock-adjustments", `{"delta": -2}`, 409, `[]`},
		{"adjust unknown", "POST", "/v1/products/D/stock-adjustments", `{"delta": 1}`, 404, `[]`},
		{"delta 0", "POST", "/v1/products/A/stock-adjustments", `{"delta": 0}`, 422, `["delta"]`},
		{"delta missing", "POST", "/v1/products/A/stock-adjustments", `{}`, 422, `["delta"]`},
		{"delta too large", "POST", "/v1/products/A/stock-adjustments", `{"delta": 1000001}`, 422, `["delta"]`},
		{"delta a string", "POST", "/v1/products/A/stock-adjustments", `{"delta": "1"}`, 422, `["delta"]`},
		{"delta a fraction", "POST", "/v1/products/A/stock-adjustments", `{"delta": 1.5}`, 422, `["delta"]`},
		{"delta beyond int64", "POST", "/v1/products/A/stock-adjustments", `{"delta": 1e30}`, 422, `["delta"]`},
		{"unknown field", "POST", "/v1/products/A/stock-adjustments", `{"delta": 1, "reason": "audit"}`, 422, `["reason"]`},
		{"not JSON", "POST", "/v1/products/A/stock-adjustments", `delta=1`, 400, `[]`},
		{"body not declared JSON", "POST", "/v1/products/A/stock-adjustments", ``, 415, `[]`},
		{"wrong method", "PUT", "/v1/products/A", ``, 405, `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := call(newAPI(t), tt.method, tt.target, tt.body)
			if rec.Code != tt.wantStatus {
				t.Fatalf("%s %s = %d, want %d; body %s", tt.method, tt.target, rec.Code, tt.wantStatus, rec.Body)
			}
			var got any
			if rec.Code < 400 {
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type = %q, want application/json", ct)
				}
				got = decode[any](t, rec.Body.String())
			} else {
				got = problemFields(t, rec)
			}
			if diff := cmp.Diff(decode[any](t, tt.wantBody), got); diff != "" {
				t.Errorf("%s %s body mismatch (-want +got):\n%s", tt.method, tt.target, diff)
			}
		})
	}
}

// TestListPages follows next_cursor from page to page.
func TestListPages(t *testing.T) {
	api := newAPI(t)
	var got []string
	target := "/v1/products?limit=2&q=product"
	for range 10 {
		rec := call(api, "GET", target, "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", target, rec.Code, rec.Body)
		}
		page := decode[struct {
			Items []struct {
				SKU string `json:"sku"`
			} `json:"items"`
			NextCursor *string `json:"next_cursor"`
		}](t, rec.Body.String())
		for _, p := range page.Items {
			got = append(got, p.SKU)
		}
		if page.NextCursor == nil {
			break
		}
		target = "/v1/products?limit=2&q=product&cursor=" + url.QueryEscape(*page.NextCursor)
	}
	if diff := cmp.Diff([]string{"A", "B", "C"}, got); diff != "" {
		t.Errorf("SKUs over all pages mismatch (-want +got):\n%s", diff)
	}
}

// problemFields checks that rec is a problem with rec's status and returns
// the names of the fields it blames, as []any for comparison with JSON.
func problemFields(t *testing.T, rec *httptest.ResponseRecorder) []any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type = %q, want %s", ct, problem.ContentType)
	}
	p := decode[problem.Details](t, rec.Body.String())
	if p.Status != rec.Code || p.Title == "" {
		t.Errorf("problem %+v: want status %d and a title", p, rec.Code)
	}
	fields := []any{}
	for _, f := range p.Errors {
		fields = append(fields, f.Field)
		if f.Message == "" {
			t.Errorf("field error %q has no message", f.Field)
		}
	}
	return fields
}

func decode[T any](t testing.TB, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// checkAnswer fails unless rec passes servicetest.CheckNoServerError and a
// success (or Gin's redirect from "/v1/products/" to "/v1/products") is
// JSON: untrusted input must never cause a 5xx.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	servicetest.CheckNoServerError(t, rec)
	if rec.Code < 300 && !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("status %d with a body that is not JSON: %s", rec.Code, rec.Body)
	}
}

func FuzzListProducts(f *testing.F) {
	f.Add("", "", "", "")
	f.Add("2", "QQ", "product", "true")
	f.Add("0", "!!", "%_\\", "maybe")
	f.Add("100", "Qg", "\x00\xff", "false")
	api := newAPI(f)
	f.Fuzz(func(t *testing.T, limit, cursor, q, inStock string) {
		query := url.Values{"limit": {limit}, "cursor": {cursor}, "q": {q}, "in_stock": {inStock}}
		checkAnswer(t, call(api, "GET", "/v1/products?"+query.Encode(), ""))
	})
}

func FuzzGetProduct(f *testing.F) {
	for _, sku := range []string{"A", "D", "a", "", "A/B", "%", "..", strings.Repeat("A", 100)} {
		f.Add(sku)
	}
	api := newAPI(f)
	f.Fuzz(func(t *testing.T, sku string) {
		checkAnswer(t, call(api, "GET", "/v1/products/"+url.PathEscape(sku), ""))
	})
}

func FuzzAdjustStock(f *testing.F) {
	for _, body := range []string{`{"delta":1}`, `{"delta":-1}`, `{"delta":-9}`, `{"delta":0}`, `{}`, `[]`, `null`,
		`{"delta":9223372036854775807}`, `{"delta":-9223372036854775808}`, `{"delta":1}{"delta":1}`, `{"delta":"x"}`, "\xff"} {
		f.Add("A", body)
	}
	f.Add("D", `{"delta":1}`)
	api := newAPI(f)
	f.Fuzz(func(t *testing.T, sku, body string) {
		req := httptest.NewRequest("POST", "/v1/products/"+url.PathEscape(sku)+"/stock-adjustments", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		checkAnswer(t, rec)
	})
}
