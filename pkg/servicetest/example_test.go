package servicetest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
)

// printer stands in for a test's t here: it prints what would fail the test.
type printer struct{ testing.TB }

func (printer) Helper()                           {}
func (printer) Fatalf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// quantity is a handler under test: it refuses a bad quantity with a problem,
// except that, by mistake, a huge one reaches code that fails.
func quantity(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	switch {
	case err != nil:
		problem.Write(w, problem.New(http.StatusBadRequest, "n is not a number"))
	case n > 1000:
		http.Error(w, "overflow", http.StatusInternalServerError)
	default:
		fmt.Fprintf(w, "%d\n", n)
	}
}

// A fuzz test calls CheckNoServerError on every answer; the fuzzer finds the
// input that breaks the property.
func ExampleCheckNoServerError() {
	var t testing.TB = printer{} // in a fuzz test: the t of f.Fuzz's function
	for _, n := range []string{"1", "x", "5000"} {
		rec := httptest.NewRecorder()
		quantity(rec, httptest.NewRequest(http.MethodGet, "/?n="+n, nil))
		servicetest.CheckNoServerError(t, rec)
	}
	// Output:
	// status 500, want below 500; Content-Type "text/plain; charset=utf-8", body overflow
}
