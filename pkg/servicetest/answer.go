package servicetest

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
)

// CheckNoServerError is the property every HTTP fuzz test checks: whatever
// a client sends, the answer is below 500, and a client error (4xx) is a
// problem document (problem.ContentType). A 5xx means the input reached
// somewhere it should have been refused. It fails t with the status, the
// Content-Type and the body.
func CheckNoServerError(t testing.TB, rec *httptest.ResponseRecorder) {
	t.Helper()
	ct, body := rec.Header().Get("Content-Type"), strings.TrimSpace(rec.Body.String())
	switch {
	case rec.Code >= 500:
		t.Fatalf("status %d, want below 500; Content-Type %q, body %s", rec.Code, ct, body)
	case rec.Code >= 400 && ct != problem.ContentType:
		t.Fatalf("status %d with Content-Type %q, want %s; body %s", rec.Code, ct, problem.ContentType, body)
	}
}
