package limit_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/limit"
)

// A router whose routes are behind a Limiter: each customer, named by a
// header here (the gateway reads the bearer token), may place one order
// and then waits for the next token of their bucket. pkg/process installs
// the Limiter on every service's router the same way.
func Example() {
	rules := limit.Rules{
		Adaptive: limit.None,
		Routes: map[string]limit.Route{
			"POST /orders": {Priority: limit.High, User: limit.Bucket{Rate: 0.5, Burst: 1}},
		},
	}
	l, err := limit.New(limit.Config{
		User:   func(r *http.Request) string { return r.Header.Get("X-Customer") },
		Logger: slog.New(slog.DiscardHandler),
	}, rules)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(l.Middleware())
	r.POST("/orders", func(c *gin.Context) { c.Status(http.StatusAccepted) })

	for _, customer := range []string{"alice", "alice", "bob"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/orders", nil)
		req.Header.Set("X-Customer", customer)
		r.ServeHTTP(rec, req)
		fmt.Printf("%s %d Retry-After=%q\n", customer, rec.Code, rec.Header().Get("Retry-After"))
	}
	// Output:
	// alice 202 Retry-After=""
	// alice 429 Retry-After="2"
	// bob 202 Retry-After=""
}
