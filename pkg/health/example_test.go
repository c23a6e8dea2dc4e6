package health_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/microshop/microshop/pkg/health"
)

func Example() {
	checks := health.New(0) // 2s per check
	checks.Add("database", func(context.Context) error { return nil })
	checks.Add("kafka", func(context.Context) error { return errors.New("no broker reachable") })

	rec := httptest.NewRecorder()
	checks.Ready(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	fmt.Print(rec.Code, " ", rec.Body)

	checks.Drain() // shutdown began: traffic should move away
	fmt.Println(checks.Check(context.Background()).Status)
	// Output:
	// 503 {"status":"not ready","checks":{"database":{"status":"up"},"kafka":{"status":"down","error":"no broker reachable"}}}
	// draining
}
