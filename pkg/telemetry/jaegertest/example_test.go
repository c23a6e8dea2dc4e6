package jaegertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/telemetry/jaegertest"
)

// testTrace is how a test checks what reached Jaeger: start it, point the
// code under test at its OTLP endpoint, then wait for the trace.
func testTrace(t *testing.T) {
	jaeger := jaegertest.Start(t) // skips without the binary, fails under CI=true
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", jaeger.OTLPHTTP)
	traceID := "..." // the trace id of what the test did
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tr := jaeger.WaitTrace(ctx, t, traceID, func(tr jaegertest.Trace) bool { return len(tr.ByName("GET /products")) > 0 })
	t.Log(tr)
}

// Example shows the calls a test makes (see testTrace). It has no Output
// comment, so go test compiles it but does not run it: an Example gets no
// *testing.T, and jaegertest needs one.
func Example() {
	_ = testTrace
}
