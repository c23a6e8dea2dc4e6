package problem_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/microshop/microshop/pkg/problem"
)

func ExampleWrite() {
	rec := httptest.NewRecorder()
	p := problem.New(http.StatusUnprocessableEntity, "the order is invalid")
	p.Errors = []problem.FieldError{{Field: "lines[0].quantity", Message: "must be at least 1"}}
	problem.Write(rec, p)

	fmt.Println(rec.Code, rec.Header().Get("Content-Type"))
	fmt.Print(rec.Body)
	// Output:
	// 422 application/problem+json
	// {"title":"Unprocessable Entity","status":422,"detail":"the order is invalid","errors":[{"field":"lines[0].quantity","message":"must be at least 1"}]}
}
