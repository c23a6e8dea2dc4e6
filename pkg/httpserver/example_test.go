package httpserver_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
)

func ExampleDecodeJSON() {
	create := func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			SKU      string `json:"sku"`
			Quantity int    `json:"quantity"`
		}
		if err := httpserver.DecodeJSON(w, r, &req, 0); err != nil {
			var p *problem.Details
			if errors.As(err, &p) {
				problem.Write(w, *p)
			}
			return
		}
		fmt.Fprintf(w, "%d × %s\n", req.Quantity, req.SKU)
	}

	for _, body := range []string{`{"sku":"MUG","quantity":2}`, `{"sku":"MUG","quantity":"two"}`, `{"sku":"MUG"} {}`} {
		req := httptest.NewRequest(http.MethodPost, "/v1/orders", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		create(rec, req)
		fmt.Print(rec.Code, " ", rec.Body)
	}
	// Output:
	// 200 2 × MUG
	// 422 {"title":"Invalid request","status":422,"detail":"one or more fields are invalid","errors":[{"field":"quantity","message":"must be a JSON number in range"}]}
	// 400 {"title":"Bad Request","status":400,"detail":"body must hold exactly one JSON value"}
}
