package apitest

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
)

// Probe sends mutations of valid, a request the gateway accepts: every
// value of its JSON body replaced by values of other types and sizes or
// removed, unknown fields added, the body cut short, each header and query
// parameter and the last path segment replaced. Whatever the mutation,
// the gateway must answer — no connection reset — with a status below 500,
// a 4xx as a problem document, and (as Client.Do checks) within the
// OpenAPI document. A mutation may happen to be valid; its 2xx is fine.
func Probe(t *testing.T, c *Client, valid Request) {
	for _, m := range c.mutations(valid) {
		t.Run(m.Name, func(t *testing.T) {
			resp := c.Do(t, m.Request)
			if resp.Status >= 500 {
				t.Fatalf("status %d for bad input; body %s", resp.Status, resp.Body)
			}
			if resp.Status < 400 {
				return
			}
			var p problem.Details
			if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType || json.Unmarshal(resp.Body, &p) != nil || p.Status != resp.Status {
				t.Errorf("%d answered as %q, not a problem: %s", resp.Status, ct, resp.Body)
			}
		})
	}
}

// mutations returns the requests Probe sends. The last path segment is
// replaced only where it is a parameter: where the mutated path is still
// one of the document's.
func (c *Client) mutations(valid Request) []Case {
	var out []Case
	add := func(name string, r Request) { out = append(out, Case{Name: name, Request: r}) }

	var body any
	if valid.Body != "" && json.Unmarshal([]byte(valid.Body), &body) == nil {
		for _, path := range jsonPaths(body, nil) {
			name := "body " + pathName(path)
			if _, isKey := path[len(path)-1].(string); isKey {
				add(name+" removed", withBody(valid, edit(body, path, nil, true)))
			}
			for _, v := range oddValues {
				add(fmt.Sprintf("body %s = %.40s", pathName(path), mustJSON(v)), withBody(valid, edit(body, path, v, false)))
			}
		}
		for _, path := range objectPaths(body, nil) {
			add("body "+pathName(path)+" with an unknown field", withBody(valid, edit(body, append(path, "unknown"), 1, false)))
		}
		for _, cut := range []int{1, len(valid.Body) / 2, len(valid.Body) - 1} {
			add(fmt.Sprintf("body cut at %d", cut), withBody(valid, valid.Body[:cut]))
		}
		add("body twice", withBody(valid, valid.Body+valid.Body))
		add("body not JSON", withBody(valid, "\xff\xfe not json"))
		add("body a JSON string", withBody(valid, `"`+strings.Repeat("a", 100)+`"`))
		add("body with a NUL", withBody(valid, strings.Replace(valid.Body, `"`, "\"\x00", 1)))
	}
	for k := range valid.Header {
		for _, v := range []string{"", "x", strings.Repeat("k", 300), "é\u00e9", "Bearer", "Bearer " + strings.Repeat("a.", 200)} {
			r := withHeader(valid, k, v)
			add(fmt.Sprintf("header %s = %.20q", k, v), r)
		}
	}
	if base, rawQuery, ok := strings.Cut(valid.Path, "?"); ok {
		q, _ := url.ParseQuery(rawQuery)
		for k := range q {
			for _, v := range []string{"", "-1", "0", "99999999999999999999", "1.5", "true", "%", strings.Repeat("z", 600), "\u00e9\u0000"} {
				q2, _ := url.ParseQuery(rawQuery)
				q2.Set(k, v)
				r := valid
				r.Path = base + "?" + q2.Encode()
				add(fmt.Sprintf("query %s = %.20q", k, v), r)
			}
		}
	}
	if i := strings.LastIndexByte(valid.Path, '/'); i > len("/api/v1") {
		base, _, _ := strings.Cut(valid.Path[:i], "?")
		for _, seg := range []string{"x", "X-Y", strings.Repeat("A", 300), "%00", "%C3%A9", "..", "a%2Fb", "%FF"} {
			r := valid
			r.Path = base + "/" + seg
			if c.validator.Documents(r.Method, r.Path) {
				add("path segment "+seg[:min(len(seg), 20)], r)
			}
		}
	}
	return out
}

// ValidRequests returns one request per operation of the API that the
// gateway accepts, for Probe. known.OrderID, if set, is an order of the
// customer's; without it GET /orders/{id} is left out.
func ValidRequests(tok Tokens, known Known) []Request {
	cust, admin := Bearer(tok.Customer), Bearer(tok.Admin)
	order := withHeader(Request{Header: cust}, "Idempotency-Key", "probe-"+known.SKU).Header
	reqs := []Request{
		{Method: "GET", Path: "/api/v1/openapi.json"},
		{Method: "POST", Path: "/api/v1/login", Body: `{"username":"alice","password":"alice-demo"}`},
		{Method: "GET", Path: "/api/v1/products?limit=5&q=a&in_stock=true&cursor="},
		{Method: "GET", Path: "/api/v1/products/" + known.SKU},
		{Method: "POST", Path: "/api/v1/orders", Header: order, Body: `{"card_number":"` + GoodCard + `","lines":[{"sku":"` + known.SKU + `","quantity":1}]}`},
		{Method: "GET", Path: "/api/v1/orders?limit=5&cursor=", Header: cust},
		{Method: "POST", Path: "/api/v1/admin/products/" + known.SKU + "/stock-adjustments", Header: admin, Body: `{"delta":1}`},
		{Method: "GET", Path: "/api/v1/admin/psp/faults", Header: admin},
		{Method: "PUT", Path: "/api/v1/admin/psp/faults", Header: admin, Body: `{"latency":"0s","failure_rate":0}`},
	}
	if known.OrderID != "" {
		reqs = append(reqs, Request{Method: "GET", Path: "/api/v1/orders/" + known.OrderID, Header: cust})
	}
	return reqs
}

var oddValues = []any{
	nil, true, false, 0, -1, 1.5, 1e300, json.Number("99999999999999999999999"),
	"", "x", "\u0000", "😀", strings.Repeat("x", 300), strings.Repeat("x", 20<<10),
	[]any{}, []any{nil}, map[string]any{},
}

func withBody(r Request, body string) Request {
	r.Body = body
	if body == "" {
		r.Header = withHeader(r, "Content-Type", "application/json").Header
	}
	return r
}

func withHeader(r Request, k, v string) Request {
	h := make(map[string]string, len(r.Header)+1)
	for hk, hv := range r.Header {
		h[hk] = hv
	}
	h[k] = v
	r.Header = h
	return r
}

// jsonPaths lists the path of every value in v, containers included.
func jsonPaths(v any, prefix []any) [][]any {
	var out [][]any
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			p := append(append([]any(nil), prefix...), k)
			out = append(out, p)
			out = append(out, jsonPaths(child, p)...)
		}
	case []any:
		for i, child := range v {
			p := append(append([]any(nil), prefix...), i)
			out = append(out, p)
			out = append(out, jsonPaths(child, p)...)
		}
	}
	return out
}

// objectPaths lists the path of every object in v, v itself included.
func objectPaths(v any, prefix []any) [][]any {
	var out [][]any
	if _, ok := v.(map[string]any); ok {
		out = append(out, prefix)
	}
	for _, p := range jsonPaths(v, prefix) {
		if _, ok := at(v, p[len(prefix):]).(map[string]any); ok {
			out = append(out, p)
		}
	}
	return out
}

func at(v any, path []any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			v = v.(map[string]any)[k]
		case int:
			v = v.([]any)[k]
		}
	}
	return v
}

// edit returns root as JSON with the value at path set to val, or removed.
func edit(root any, path []any, val any, remove bool) string {
	var copied any
	_ = json.Unmarshal([]byte(mustJSON(root)), &copied)
	parent := at(copied, path[:len(path)-1])
	switch k := path[len(path)-1].(type) {
	case string:
		m := parent.(map[string]any)
		if remove {
			delete(m, k)
		} else {
			m[k] = val
		}
	case int:
		parent.([]any)[k] = val
	}
	return mustJSON(copied)
}

// mustJSON marshals values decoded from JSON or taken from oddValues,
// which always marshal.
func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func pathName(path []any) string {
	var b strings.Builder
	for _, k := range path {
		switch k := k.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	if b.Len() == 0 {
		return "(root)"
	}
	return b.String()
}
