package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/api"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

// newTestAPI returns the API with upstreams where nothing listens: a
// request that gets past the handlers' checks answers 502.
func newTestAPI(t *testing.T) (*API, *auth.Tokens) {
	t.Helper()
	tokens, err := auth.NewTokens([]byte(strings.Repeat("k", 32)), time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	nowhere, err := upstream.New("nowhere", "http://127.0.0.1:1", time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(context.Background(), slog.New(slog.DiscardHandler), auth.DemoDirectory(), tokens,
		Upstreams{Inventory: nowhere, Orders: nowhere, PSP: nowhere})
	if err != nil {
		t.Fatal(err)
	}
	return a, tokens
}

func TestEveryRouteIsInTheContract(t *testing.T) {
	a, _ := newTestAPI(t)
	r := httpserver.NewRouter(slog.New(slog.DiscardHandler), health.New(0))
	a.Register(r)
	param := regexp.MustCompile(`:[a-z]+`)
	var n int
	for _, route := range r.Routes() {
		if !strings.HasPrefix(route.Path, "/api/v1/") {
			continue
		}
		n++
		path := param.ReplaceAllString(route.Path, "X")
		if !a.contract.Documents(route.Method, path) {
			t.Errorf("%s %s is served but not in the OpenAPI document", route.Method, route.Path)
		}
	}
	if n < 9 {
		t.Errorf("found %d routes under /api/v1, want every one of them (at least 9)", n)
	}
}

// TestHandlersRequireWhatTheContractRequires removes, one at a time, every
// field the document marks required from a valid body, and sends the rest
// to the handlers without the contract's check in front: each must refuse
// it on its own, naming the field, so that code and document cannot drift.
func TestHandlersRequireWhatTheContractRequires(t *testing.T) {
	a, tokens := newTestAPI(t)
	r := httpserver.NewRouter(slog.New(slog.DiscardHandler), health.New(0))
	a.register(r, func(*gin.Context) {})
	doc, err := api.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	customer, _, _ := tokens.Issue(auth.User{ID: "cus_alice", Role: auth.RoleCustomer})
	admin, _, _ := tokens.Issue(auth.User{ID: "adm", Role: auth.RoleAdmin})
	valid := map[string]struct{ token, body string }{
		"POST /login":  {"", `{"username":"alice","password":"alice-demo"}`},
		"POST /orders": {customer, `{"card_number":"4242424242424242","lines":[{"sku":"MUG-CLASSIC","quantity":1}]}`},
		"POST /admin/products/{sku}/stock-adjustments": {admin, `{"delta":1}`},
		"PUT /admin/psp/faults":                        {admin, `{"latency":"1s","failure_rate":0.5}`},
	}
	var ops int
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil {
				continue
			}
			ops++
			name := method + " " + path
			v, ok := valid[name]
			if !ok {
				t.Errorf("%s takes a body: give this test a valid one", name)
				continue
			}
			target := "/api/v1" + strings.ReplaceAll(path, "{sku}", "MUG-CLASSIC")
			send := func(body string) (int, problem.Details) {
				req := httptest.NewRequest(method, target, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+v.token)
				req.Header.Set("Idempotency-Key", "k")
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, req)
				var p problem.Details
				_ = json.Unmarshal(rec.Body.Bytes(), &p)
				return rec.Code, p
			}
			if code, p := send(v.body); code == http.StatusUnprocessableEntity {
				t.Errorf("%s refuses its valid body: %+v", name, p)
			}
			schema := op.RequestBody.Value.Content.Get("application/json").Schema.Value
			for _, field := range requiredFields(schema, "") {
				t.Run(name+" without "+field.path, func(t *testing.T) {
					var body map[string]any
					if err := json.Unmarshal([]byte(v.body), &body); err != nil {
						t.Fatal(err)
					}
					field.remove(body)
					b, _ := json.Marshal(body)
					code, p := send(string(b))
					if code != http.StatusUnprocessableEntity || !names(p, field.path) {
						t.Errorf("without %s: %d %+v, want a 422 naming it", field.path, code, p)
					}
				})
			}
		}
	}
	if ops != len(valid) {
		t.Errorf("%d operations take a body, the test knows %d", ops, len(valid))
	}
}

type requiredField struct {
	path   string // as problems name it, e.g. "lines[0].sku"
	remove func(body map[string]any)
}

// requiredFields lists the required properties of schema and of the first
// item of its arrays of objects.
func requiredFields(schema *openapi3.Schema, prefix string) []requiredField {
	var out []requiredField
	for _, name := range schema.Required {
		out = append(out, requiredField{prefix + name, func(body map[string]any) { delete(body, name) }})
	}
	for name, prop := range schema.Properties {
		items := prop.Value.Items
		if items == nil || !items.Value.Type.Is("object") {
			continue
		}
		for _, f := range requiredFields(items.Value, prefix+name+"[0].") {
			out = append(out, requiredField{f.path, func(body map[string]any) {
				if list, ok := body[name].([]any); ok && len(list) > 0 {
					if first, ok := list[0].(map[string]any); ok {
						f.remove(first)
					}
				}
			}})
		}
	}
	return out
}

func names(p problem.Details, field string) bool {
	for _, e := range p.Errors {
		if e.Field == field {
			return true
		}
	}
	return false
}
