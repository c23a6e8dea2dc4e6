package httpapi_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/order/internal/httpapi"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/internal/order/ordertest"
)

var start = time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)

// newServer returns the service's router with the order API on an
// in-memory store, and the clock it reads.
func newServer(t testing.TB) (http.Handler, *ordertest.Clock) {
	t.Helper()
	clock := ordertest.NewClock(start)
	log := slog.New(slog.DiscardHandler)
	router := httpserver.NewRouter(log, health.New(time.Second))
	store := ordertest.NewMemoryStore()
	httpapi.Register(router, order.NewService(store, ordertest.NewCheckouts(store), clock.Now), log)
	return router, clock
}

type request struct {
	method, target string
	header         http.Header
	body           string
}

func serve(h http.Handler, r request) *httptest.ResponseRecorder {
	req := httptest.NewRequest(r.method, r.target, strings.NewReader(r.body))
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func post(key, body string) request {
	return request{method: http.MethodPost, target: "/v1/orders", header: http.Header{"Idempotency-Key": {key}}, body: body}
}

func get(target string) request { return request{method: http.MethodGet, target: target} }

const mugs = `{"customer_id": "alice", "card_number": "4242424242424242", "lines": [
	{"sku": "MUG", "quantity": 2, "unit_price": {"amount": 1250, "currency": "EUR"}},
	{"sku": "CAP", "quantity": 1, "unit_price": {"amount": 900, "currency": "EUR"}}]}`

// decode returns the JSON body of rec as generic values, for comparing
// with the documented wire format.
func decode(t *testing.T, rec *httptest.ResponseRecorder) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body, err)
	}
	return v
}

func parse(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCreateAndGet(t *testing.T) {
	h, _ := newServer(t)

	created := serve(h, post("key-1", mugs))
	if created.Code != http.StatusAccepted {
		t.Fatalf("POST status = %d, want 202; body %s", created.Code, created.Body)
	}
	var id string
	if o, ok := decode(t, created).(map[string]any); ok {
		id, _ = o["id"].(string)
	}
	want := parse(t, `{
		"id": "`+id+`", "customer_id": "alice", "status": "PENDING",
		"lines": [
			{"sku": "MUG", "quantity": 2, "unit_price": {"amount": 1250, "currency": "EUR"}},
			{"sku": "CAP", "quantity": 1, "unit_price": {"amount": 900, "currency": "EUR"}}],
		"total": {"amount": 3400, "currency": "EUR"},
		"created_at": "2030-01-02T03:04:05.123456Z", "updated_at": "2030-01-02T03:04:05.123456Z",
		"history": [{"status": "PENDING", "reason": "order placed", "at": "2030-01-02T03:04:05.123456Z"}]}`)
	if diff := cmp.Diff(want, decode(t, created)); diff != "" {
		t.Errorf("created order (-want +got):\n%s", diff)
	}
	if got, want := created.Header().Get("Location"), "/v1/orders/"+id; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}

	tests := []struct {
		name       string
		req        request
		wantStatus int
	}{
		{"replay", post("key-1", mugs), http.StatusOK},
		{"replay at other prices", post("key-1", strings.ReplaceAll(mugs, "1250", "1300")), http.StatusOK},
		{"get", get("/v1/orders/" + id + "?customer_id=alice"), http.StatusOK},
		{"get for any customer", get("/v1/orders/" + id), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(h, tt.req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if diff := cmp.Diff(want, decode(t, rec)); diff != "" {
				t.Errorf("order (-want +got):\n%s", diff)
			}
			if loc := rec.Header().Get("Location"); loc != "" {
				t.Errorf("Location = %q on a %d, want none", loc, rec.Code)
			}
		})
	}
}

// TestProblems checks that bad requests get the documented status and a
// problem naming what is wrong.
func TestProblems(t *testing.T) {
	h, _ := newServer(t)
	rec := serve(h, post("used", mugs))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("POST status = %d, want 202; body %s", rec.Code, rec.Body)
	}
	used := strings.TrimPrefix(rec.Header().Get("Location"), "/v1/orders/") // alice's order
	tests := []struct {
		name string
		req  request
		want problem.Details // compared without Title and Detail
	}{
		{"no Idempotency-Key", request{method: http.MethodPost, target: "/v1/orders", body: mugs},
			problem.Details{Status: 400, Errors: []problem.FieldError{{Field: "Idempotency-Key", Message: "is required"}}}},
		{"two Idempotency-Keys", request{method: http.MethodPost, target: "/v1/orders", header: http.Header{"Idempotency-Key": {"a", "b"}}, body: mugs},
			problem.Details{Status: 400, Errors: []problem.FieldError{{Field: "Idempotency-Key", Message: "must be given once"}}}},
		{"Idempotency-Key too long", post(strings.Repeat("k", 256), mugs),
			problem.Details{Status: 400, Errors: []problem.FieldError{{Field: "Idempotency-Key", Message: "must be 1 to 255 printable ASCII characters"}}}},
		{"Idempotency-Key not ASCII", post("clé", mugs),
			problem.Details{Status: 400, Errors: []problem.FieldError{{Field: "Idempotency-Key", Message: "must be 1 to 255 printable ASCII characters"}}}},
		{"key used for other lines", post("used", strings.Replace(mugs, `"quantity": 2`, `"quantity": 3`, 1)),
			problem.Details{Status: 409}},
		{"not JSON", request{method: http.MethodPost, target: "/v1/orders", header: http.Header{"Idempotency-Key": {"k"}, "Content-Type": {"text/plain"}}, body: mugs},
			problem.Details{Status: 415}},
		{"malformed JSON", post("k", `{"customer_id": `), problem.Details{Status: 400}},
		{"unknown field", post("k", `{"customer": "alice"}`),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "customer", Message: "is not a known field"}}}},
		{"fractional quantity", post("k", `{"customer_id": "alice", "lines": [{"sku": "MUG", "quantity": 1.5}]}`),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "lines.quantity", Message: "must be a JSON number in range"}}}},
		{"invalid values", post("k", `{"customer_id": "alice", "card_number": "4242424242424242", "lines": [{"sku": "MUG", "quantity": 0, "unit_price": {"amount": 100, "currency": "EUR"}}]}`),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "lines[0].quantity", Message: "must be from 1 to 1000"}}}},
		{"a card number failing the Luhn check", post("k", strings.Replace(mugs, "4242424242424242", "4242424242424241", 1)),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "card_number", Message: "must be 12 to 19 digits passing the Luhn check"}}}},
		{"no card number", post("k", strings.Replace(mugs, `"card_number": "4242424242424242", `, "", 1)),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "card_number", Message: "must be 12 to 19 digits passing the Luhn check"}}}},
		{"body too large", post("k", `{"customer_id": "`+strings.Repeat("a", httpserver.DefaultMaxBody)+`"}`),
			problem.Details{Status: 413}},
		{"unknown order", get("/v1/orders/01a1fe98-4ebc-7ab1-a444-e13141094433"), problem.Details{Status: 404}},
		{"malformed order id", get("/v1/orders/nope"), problem.Details{Status: 404}},
		{"another customer's order", get("/v1/orders/" + used + "?customer_id=bob"), problem.Details{Status: 404}},
		{"an empty customer id", get("/v1/orders/" + used + "?customer_id="),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "customer_id", Message: "must not be empty: leave it out to read any customer's order"}}}},
		{"list without customer", get("/v1/orders"),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "customer_id", Message: "is required"}}}},
		{"list with a limit that is not a number", get("/v1/orders?customer_id=alice&limit=ten"),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "limit", Message: "must be an integer from 1 to 100"}}}},
		{"list with an empty limit", get("/v1/orders?customer_id=alice&limit="),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "limit", Message: "must be an integer from 1 to 100"}}}},
		{"list with limit 0", get("/v1/orders?customer_id=alice&limit=0"),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "limit", Message: "must be from 1 to 100"}}}},
		{"list with limit 101", get("/v1/orders?customer_id=alice&limit=101"),
			problem.Details{Status: 422, Errors: []problem.FieldError{{Field: "limit", Message: "must be from 1 to 100"}}}},
		{"list with a foreign cursor", get("/v1/orders?customer_id=alice&cursor=bm9wZQ"),
			problem.Details{Status: 400, Errors: []problem.FieldError{{Field: "cursor", Message: "is not a next_cursor this API returned"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(h, tt.req)
			if ct := rec.Header().Get("Content-Type"); rec.Code != tt.want.Status || ct != problem.ContentType {
				t.Fatalf("status %d, Content-Type %q; want %d, %s; body %s", rec.Code, ct, tt.want.Status, problem.ContentType, rec.Body)
			}
			var got problem.Details
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			tt.want.Instance = strings.Split(tt.req.target, "?")[0]
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(problem.Details{}, "Title", "Detail")); diff != "" {
				t.Errorf("problem (-want +got):\n%s", diff)
			}
		})
	}
}

func TestList(t *testing.T) {
	h, clock := newServer(t)
	var ids []string // alice's orders, oldest first
	for i, body := range []string{mugs, mugs, mugs, strings.Replace(mugs, "alice", "bob", 1)} {
		rec := serve(h, post(string(rune('a'+i)), body))
		if rec.Code != http.StatusAccepted {
			t.Fatalf("POST status = %d, want 202; body %s", rec.Code, rec.Body)
		}
		if i < 3 {
			ids = append(ids, decode(t, rec).(map[string]any)["id"].(string))
		}
		clock.Advance(time.Second)
	}

	type page struct {
		Items []struct {
			ID      string          `json:"id"`
			History json.RawMessage `json:"history"`
		} `json:"items"`
		NextCursor string `json:"next_cursor"`
	}
	var got []string
	target := "/v1/orders?customer_id=alice&limit=2"
	for pages := 1; ; pages++ {
		rec := serve(h, get(target))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s status = %d, want 200; body %s", target, rec.Code, rec.Body)
		}
		var p page
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		for _, item := range p.Items {
			got = append(got, item.ID)
			if item.History != nil {
				t.Errorf("listed order %s has history %s, want it left out", item.ID, item.History)
			}
		}
		if p.NextCursor == "" {
			break
		}
		if pages > len(ids) {
			t.Fatalf("still paging after %d pages", pages)
		}
		target = "/v1/orders?customer_id=alice&limit=2&cursor=" + p.NextCursor
	}
	want := []string{ids[2], ids[1], ids[0]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("listed ids, newest first (-want +got):\n%s", diff)
	}

	if rec := serve(h, get("/v1/orders?customer_id=carol")); rec.Code != http.StatusOK || rec.Body.String() != `{"items":[]}` {
		t.Errorf("empty list = %d %s, want 200 {\"items\":[]}", rec.Code, rec.Body)
	}
}
