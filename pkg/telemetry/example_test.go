package telemetry_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/telemetry"
)

// A service starts telemetry once, instruments its router and its outbound
// clients with it, and serves the registry at /metrics. Without
// OTEL_EXPORTER_OTLP_ENDPOINT nothing is exported, but every request still
// gets a span (its trace context reaches the next hop) and the RED
// histograms count it.
func Example() {
	ctx := context.Background()
	getenv := func(string) string { return "" } // no OTEL_* variables
	tel, err := telemetry.Start(ctx, telemetry.Config{ServiceName: "catalog", Getenv: getenv}, slog.New(slog.DiscardHandler))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tel.Shutdown(ctx)

	gin.SetMode(gin.ReleaseMode)
	router := gin.New()
	router.Use(tel.ServerMiddleware()...) // before the routes: gin applies Use to routes added later
	router.GET("/products/:sku", func(c *gin.Context) { c.String(http.StatusOK, "a mug") })
	router.GET("/metrics", gin.WrapH(tel.MetricsHandler()))

	router.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/products/MUG-1", nil))

	metrics := httptest.NewRecorder()
	router.ServeHTTP(metrics, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for line := range strings.SplitSeq(metrics.Body.String(), "\n") {
		if strings.HasPrefix(line, "http_server_request_duration_seconds_count") {
			fmt.Println(line)
		}
	}
	fmt.Println("exporting:", tel.Exporting)
	// Output:
	// http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_class="2xx",http_route="/products/:sku"} 1
	// exporting: false
}
