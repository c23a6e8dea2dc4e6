package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

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
