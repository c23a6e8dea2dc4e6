package httpserver_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
)

// A group of routes with a body limit smaller than the router's: a body
// declared larger is refused before the handler runs, and the connection
// is closed after the answer.
func ExampleLimitBody() {
	r := httpserver.NewRouter(slog.New(slog.DiscardHandler), health.New(0))
	r.Group("/notes", httpserver.LimitBody(1<<10)).POST("", func(c *gin.Context) {
		c.Status(http.StatusNoContent)
	})

	for _, size := range []int{100, 2000} {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/notes", strings.NewReader(strings.Repeat("x", size))))
		fmt.Printf("%d bytes: %d, Connection %q\n", size, rec.Code, rec.Header().Get("Connection"))
	}
	// Output:
	// 100 bytes: 204, Connection ""
	// 2000 bytes: 413, Connection "close"
}
