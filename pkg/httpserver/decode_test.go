package httpserver_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
)

type line struct {
	SKU      string `json:"sku"`
	Quantity int32  `json:"quantity"`
}

type body struct {
	Name  string `json:"name"`
	Lines []line `json:"lines"`
}

func decode(contentType, payload string, max int64) (body, error) {
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(payload))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	var b body
	err := httpserver.DecodeJSON(httptest.NewRecorder(), r, &b, max)
	return b, err
}

func TestDecodeJSONAccepts(t *testing.T) {
	got, err := decode("application/json; charset=utf-8", `{"name":"ü","lines":[{"sku":"A","quantity":2}]}`, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := body{Name: "ü", Lines: []line{{SKU: "A", Quantity: 2}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("decoded mismatch (-want +got):\n%s", diff)
	}
}

func TestDecodeJSONRejects(t *testing.T) {
	tests := []struct {
		name        string
		contentType string
		payload     string
		max         int64
		wantStatus  int
		wantField   string
	}{
		{"no content type", "", `{}`, 0, 415, ""},
		{"text/plain", "text/plain", `{}`, 0, 415, ""},
		{"too big", "application/json", `{"name":"` + strings.Repeat("x", 100) + `"}`, 50, 413, ""},
		{"empty", "application/json", ``, 0, 400, ""},
		{"malformed", "application/json", `{"name":`, 0, 400, ""},
		{"two values", "application/json", `{} {}`, 0, 400, ""},
		{"trailing garbage", "application/json", `{}x`, 0, 400, ""},
		{"wrong type", "application/json", `{"name":5}`, 0, 422, "name"},
		{"nested wrong type", "application/json", `{"lines":[{"quantity":"2"}]}`, 0, 422, "lines.quantity"},
		{"overflowing number", "application/json", `{"lines":[{"quantity":99999999999}]}`, 0, 422, "lines.quantity"},
		{"fractional quantity", "application/json", `{"lines":[{"quantity":1.5}]}`, 0, 422, "lines.quantity"},
		{"unknown field", "application/json", `{"nam":"x"}`, 0, 422, "nam"},
		{"array instead of object", "application/json", `[]`, 0, 422, "(body)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decode(tt.contentType, tt.payload, tt.max)
			var p *problem.Details
			if !errors.As(err, &p) {
				t.Fatalf("error = %v, want a *problem.Details", err)
			}
			if p.Status != tt.wantStatus {
				t.Errorf("status = %d, want %d (%v)", p.Status, tt.wantStatus, err)
			}
			var field string
			if len(p.Errors) > 0 {
				field = p.Errors[0].Field
			}
			if field != tt.wantField {
				t.Errorf("field = %q, want %q", field, tt.wantField)
			}
		})
	}
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"name":"x","lines":[{"sku":"A","quantity":1}]}`)
	f.Add(`{"lines":[{"quantity":1e99}]}`)
	f.Add("\xff\xfe")
	f.Fuzz(func(t *testing.T, payload string) {
		_, err := decode("application/json", payload, 1024)
		if err == nil {
			return
		}
		var p *problem.Details
		if !errors.As(err, &p) || p.Status < 400 || p.Status > 499 {
			t.Fatalf("decode(%q) = %v, want a 4xx problem", payload, err)
		}
	})
}
