package labs

import (
	"context"
	"fmt"
	"time"

	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
)

// findTraces searches Jaeger for the traces of service (and operation, if
// not empty) with every tag of tags, started in the last lookback, at most
// limit of them, as GET /api/traces?service=… does for a user.
func findTraces(ctx context.Context, jaeger, service, operation string, tags map[string]string, lookback time.Duration, limit int) ([]jaegerquery.Trace, error) {
	if jaeger == "" {
		return nil, fmt.Errorf("no Jaeger address: is make run-full running?")
	}
	c, err := jaegerquery.New(jaeger, nil)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	now := time.Now()
	traces, err := c.Find(ctx, jaegerquery.Query{Service: service, Operation: operation, Tags: tags,
		Start: now.Add(-lookback), End: now.Add(time.Minute), Limit: limit})
	if err != nil {
		return nil, fmt.Errorf("search Jaeger: %w", err)
	}
	return traces, nil
}
