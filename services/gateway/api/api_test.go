package api_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/api"
)

func TestValidatorBites(t *testing.T) {
	ctx := context.Background()
	doc, err := api.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.NewValidator(doc)
	if err != nil {
		t.Fatal(err)
	}
	json := http.Header{"Content-Type": {"application/json"}}
	problem := http.Header{"Content-Type": {"application/problem+json"}}
	product := `{"sku":"MUG","name":"Mug","description":"","price":{"amount":900,"currency":"EUR"},"image_ref":"","available":3}`
	tests := []struct {
		name, method, path string
		status             int
		header             http.Header
		body               string
		wantErr            bool
	}{
		{"valid product", "GET", "/api/v1/products/MUG", 200, json, product, false},
		{"valid problem", "GET", "/api/v1/products/NOPE", 404, problem, `{"title":"Not Found","status":404}`, false},
		{"undocumented status", "GET", "/api/v1/products/MUG", 418, problem, `{"title":"x","status":418}`, true},
		{"wrong shape", "GET", "/api/v1/products/MUG", 200, json, `{"sku":1}`, true},
		{"float money", "GET", "/api/v1/products/MUG", 200, json, `{"sku":"MUG","name":"Mug","description":"","price":{"amount":9.5,"currency":"EUR"},"image_ref":"","available":3}`, true},
		{"error not a problem", "GET", "/api/v1/products/NOPE", 404, json, `{"error":"not found"}`, true},
		{"unknown path", "GET", "/api/v1/nowhere", 200, json, `{}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://gateway"+tt.path, nil)
			err := v.CheckResponse(ctx, req, tt.status, tt.header, []byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Errorf("CheckResponse = %v, want error: %v", err, tt.wantErr)
			}
		})
	}
}

func TestCheckRequest(t *testing.T) {
	ctx := context.Background()
	doc, err := api.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v, err := api.NewValidator(doc)
	if err != nil {
		t.Fatal(err)
	}
	order := `{"card_number":"4242424242424242","lines":[{"sku":"MUG","quantity":1}]}`
	tests := []struct {
		name, method, target, contentType, key, body string
		want                                         problem.Details // Status and Errors only
	}{
		{"valid order", "POST", "/api/v1/orders", "application/json", "k", order, problem.Details{}},
		{"valid list", "GET", "/api/v1/products?limit=5&in_stock=true", "", "", "", problem.Details{}},
		{"not in the document", "GET", "/api/v1/nowhere", "", "", "", problem.Details{Status: 404}},
		{"text body", "POST", "/api/v1/orders", "text/plain", "k", order, problem.Details{Status: 415}},
		{"empty key", "POST", "/api/v1/orders", "application/json", "", order, problem.Details{Status: 400,
			Errors: []problem.FieldError{{Field: "Idempotency-Key", Message: "must not be empty"}}}},
		{"limit out of range", "GET", "/api/v1/products?limit=0", "", "", "", problem.Details{Status: 400,
			Errors: []problem.FieldError{{Field: "limit", Message: "number must be at least 1"}}}},
		{"empty body", "POST", "/api/v1/login", "application/json", "", "", problem.Details{Status: 400,
			Errors: []problem.FieldError{{Field: "(body)", Message: "is required"}}}},
		{"missing fields", "PUT", "/api/v1/admin/psp/faults", "application/json", "", `{"latency":"1s"}`, problem.Details{Status: 422,
			Errors: []problem.FieldError{{Field: "failure_rate", Message: "is required"}}}},
		{"nested fields", "POST", "/api/v1/orders", "application/json", "k",
			`{"card_number":"4242424242424242","lines":[{"sku":"MUG","quantity":1},{"sku":"mug","quantity":1001,"price":1}]}`,
			problem.Details{Status: 422, Errors: []problem.FieldError{
				{Field: "lines[1].price", Message: "is not a known field"},
				{Field: "lines[1].quantity", Message: "number must be at most 1000"},
				{Field: "lines[1].sku", Message: `string doesn't match the regular expression "^[A-Z0-9-]{1,64}$"`},
			}}},
		{"a parameter and a field: 400 names both", "POST", "/api/v1/orders", "application/json", "",
			`{"card_number":"42","lines":[{"sku":"MUG","quantity":1}]}`,
			problem.Details{Status: 400, Errors: []problem.FieldError{
				{Field: "Idempotency-Key", Message: "must not be empty"},
				{Field: "card_number", Message: `string doesn't match the regular expression "^[0-9]{12,19}$"`},
			}}},
		{"not an object", "POST", "/api/v1/login", "application/json", "", `[]`, problem.Details{Status: 422,
			Errors: []problem.FieldError{{Field: "(body)", Message: "value must be an object"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://gateway"+tt.target, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.contentType)
			req.Header.Set("Idempotency-Key", tt.key)
			var got problem.Details
			if err := v.CheckRequest(ctx, req); err != nil {
				var p *problem.Details
				if !errors.As(err, &p) {
					t.Fatalf("CheckRequest = %v, want a *problem.Details", err)
				}
				got = *p
			}
			got.Title, got.Detail = "", ""
			sort.Slice(got.Errors, func(i, j int) bool { return got.Errors[i].Field < got.Errors[j].Field })
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("problem mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCheckRequestLeavesTheBodyForTheHandler(t *testing.T) {
	ctx := context.Background()
	doc, _ := api.Load(ctx)
	v, err := api.NewValidator(doc)
	if err != nil {
		t.Fatal(err)
	}
	body := `{"username":"alice","password":"alice-demo"}`
	req := httptest.NewRequest("POST", "http://gateway/api/v1/login", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if err := v.CheckRequest(ctx, req); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(req.Body)
	if err != nil || string(got) != body {
		t.Errorf("body after validation = %q, %v; want %q", got, err, body)
	}
}
