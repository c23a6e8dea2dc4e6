package httpapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/servicetest"
)

// The fuzz tests send arbitrary input to every decoder of the API and check
// that the answer is never a server error: a 5xx means the input reached
// somewhere it should have been refused.

func FuzzCreate(f *testing.F) {
	f.Add("key-1", mugs)
	f.Add("key-2", `{"customer_id": "a\u0000b", "lines": [{"sku": "MUG", "quantity": 1, "unit_price": {"amount": 1, "currency": "EUR"}}]}`)
	f.Add("key-3", `{"customer_id": "alice", "card_number": "4000000000000002", "lines": [{"sku": "MUG", "quantity": 1000, "unit_price": {"amount": 9223372036854775807, "currency": "EUR"}}]}`)
	f.Add("key-4", `{"customer_id": "alice", "lines": [{"sku": "MUG", "quantity": 1e400}]}`)
	f.Add("", `{"customer_id": "alice", "lines": null}`)
	f.Add("\x7f", `[]`)
	f.Add("k", `{"customer_id": "alice"} {}`)
	h, _ := newServer(f)
	f.Fuzz(func(t *testing.T, key, body string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header["Idempotency-Key"] = []string{key} // raw: the fuzzer's bytes as they are
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		servicetest.CheckNoServerError(t, rec)
	})
}

func FuzzGet(f *testing.F) {
	f.Add("01a1fe98-4ebc-7ab1-a444-e13141094433", "customer_id=alice")
	f.Add("nope", "customer_id=%00")
	f.Add("\x00", "customer_id=%ff")
	f.Add("a/b", ";")
	h, _ := newServer(f)
	f.Fuzz(func(t *testing.T, id, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = &url.URL{Path: "/v1/orders/" + id, RawQuery: rawQuery}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		servicetest.CheckNoServerError(t, rec)
	})
}

func FuzzList(f *testing.F) {
	f.Add("customer_id=alice")
	f.Add("customer_id=alice&limit=100&cursor=MTg5MzU1MzQ0NTEyMzQ1Ni4wMWExZmU5OC00ZWJjLTdhYjEtYTQ0NC1lMTMxNDEwOTQ0MzM")
	f.Add("customer_id=alice&limit=-1&cursor=%00")
	f.Add("customer_id=%ff&limit=99999999999999999999")
	f.Add("limit=1&limit=2&cursor=!!")
	h, _ := newServer(f)
	f.Fuzz(func(t *testing.T, rawQuery string) {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = &url.URL{Path: "/v1/orders", RawQuery: rawQuery}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		servicetest.CheckNoServerError(t, rec)
	})
}
