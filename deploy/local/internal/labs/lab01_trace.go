package labs

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
)

// checkoutServices are the processes one checkout with a card that answers
// crosses, in the order a reader meets them.
func checkoutServices() []string { return []string{"gateway", "order", "inventory", "payment", "psp"} }

// checkTrace is lab 1: one checkout is one trace. It searches Jaeger for
// the gateway's POST /api/v1/orders and wants one trace that is a single
// tree spanning every service of the checkout, with the broker hop (a
// consumer's span whose parent is the outbox relay's producer span) and the
// saga at a final status.
func checkTrace(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	traces, err := findTraces(ctx, s.Jaeger, "gateway", "POST /api/v1/orders", nil, 24*time.Hour, 50)
	if err != nil {
		return v, err
	}
	if len(traces) == 0 {
		v.miss("Jaeger holds no trace of a checkout (the gateway's POST /api/v1/orders) yet: place an order — in the " +
			"storefront at http://127.0.0.1:8080, or with the curl commands of labs/01-one-trace/README.md — then run this check again")
		return v, nil
	}
	v.see("Jaeger holds %d trace(s) of a checkout (the gateway's POST /api/v1/orders)", len(traces))
	var best []string // the problems of the most complete trace
	var bestTrace jaegerquery.Trace
	for _, tr := range traces {
		problems := judgeCheckout(tr)
		if bestTrace == nil || len(problems) < len(best) {
			best, bestTrace = problems, tr
		}
		if len(problems) == 0 {
			break
		}
	}
	id := bestTrace[0].TraceID
	if len(best) > 0 {
		v.miss("no checkout trace is complete yet; the closest, %s (GET %s/api/traces/%s):", id, s.Jaeger, id)
		for _, p := range best {
			v.miss("  %s", p)
		}
		return v, nil
	}
	v.see("trace %s is one tree of %d spans across %s — look at it: GET %s/api/traces/%s",
		id, len(bestTrace), strings.Join(checkoutServices(), ", "), s.Jaeger, id)
	if consumer, producer, ok := brokerHop(bestTrace); ok {
		v.see("the broker hop: %s's span %q is the child of %s's outbox relay span %q — the trace context travelled in the Kafka headers",
			consumer.Service, consumer.Name, producer.Service, producer.Name)
	}
	if s, ok := finalSpan(bestTrace); ok {
		v.see("the saga %s reached %s (span %q of %s)", s.Tag("saga.id"), s.Tag("saga.status"), s.Name, s.Service)
	}
	return v, nil
}

// judgeCheckout lists what keeps tr from being a whole checkout trace, in
// words that say what to do.
func judgeCheckout(tr jaegerquery.Trace) []string {
	var problems []string
	want := checkoutServices()
	if have := tr.Services(want); !slices.Equal(have, want) {
		var lacking []string
		for _, s := range want {
			if !slices.Contains(have, s) {
				lacking = append(lacking, s)
			}
		}
		problems = append(problems, fmt.Sprintf("it has no span from %s: a checkout paid with a card that answers "+
			"(the good card 4242424242424242 or the declined one 4000000000000002) crosses all five; wait a few seconds if it was just placed",
			strings.Join(lacking, ", ")))
	}
	if n := len(tr.Roots()); n != 1 {
		problems = append(problems, fmt.Sprintf("it is %d pieces, not one tree: some spans have not reached Jaeger yet (wait a few seconds)", n))
	}
	if _, _, ok := brokerHop(tr); !ok {
		problems = append(problems, "no span of a Kafka consumer is the child of the outbox relay's producer span (\"send <topic>\"): "+
			"the saga's messages have not been handled yet (wait a few seconds)")
	}
	if _, ok := finalSpan(tr); !ok {
		problems = append(problems, "the saga has not reached a final status in the trace (no span with saga.status COMPLETED or FAILED): "+
			"the order is still PENDING — wait for it to be CONFIRMED or CANCELLED")
	}
	return problems
}

// brokerHop finds a consumer's span whose parent is a producer's span of
// another service: a message crossing the broker within the trace.
func brokerHop(tr jaegerquery.Trace) (consumer, producer jaegerquery.Span, ok bool) {
	for _, c := range tr {
		if c.Kind != "consumer" {
			continue
		}
		if p, found := tr.Span(c.ParentID); found && p.Kind == "producer" && strings.HasPrefix(p.Name, "send ") {
			return c, p, true
		}
	}
	return jaegerquery.Span{}, jaegerquery.Span{}, false
}

// finalSpan finds the orchestrator's span that moved the saga to a final
// status.
func finalSpan(tr jaegerquery.Trace) (jaegerquery.Span, bool) {
	for _, s := range tr {
		if st := s.Tag("saga.status"); st == "COMPLETED" || st == "FAILED" {
			return s, true
		}
	}
	return jaegerquery.Span{}, false
}
