package storefront

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// TraceFinder finds traces in a tracing backend (*jaegerquery.Client).
type TraceFinder interface {
	Find(ctx context.Context, q jaegerquery.Query) ([]jaegerquery.Trace, error)
}

// traceTimeout bounds the order page's wait for the tracing backend: the
// page is shown without its trace rather than late.
const traceTimeout = 2 * time.Second

// waterfall is an order's trace as the order page draws it: its spans in
// tree order, each a bar on the trace's time axis.
type waterfall struct {
	TraceID string
	// Problem, if not empty, says why there is no trace to show.
	Problem  string
	Total    string
	Services []string // those with spans, in order of their first span
	Rows     []spanRow
}

// spanRow is one span of the waterfall.
type spanRow struct {
	Depth            int // in the span tree, at most maxDepth
	Service, Name    string
	Offset, Duration string // Offset: since the trace began
	// X and Width place the span's bar on a 0–100 axis of the trace.
	X, Width string
	Error    bool
}

// maxDepth is the deepest indentation drawn (the stylesheet's depth-N).
const maxDepth = 12

// orderTrace finds the trace of the checkout that created o: the one whose
// span in the order service carries the order's id
// (checkoutv1.SpanAttributeOrderID), around the order's creation. Nil when
// no backend is configured.
func (s *Storefront) orderTrace(c *gin.Context, o order) *waterfall {
	if s.opts.Traces == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), traceTimeout)
	defer cancel()
	traces, err := s.opts.Traces.Find(ctx, jaegerquery.Query{
		Service: "order",
		Tags:    map[string]string{checkoutv1.SpanAttributeOrderID: o.ID},
		Start:   o.CreatedAt.Add(-time.Minute), End: o.CreatedAt.Add(time.Minute),
	})
	if err != nil {
		s.log.WarnContext(c, "read the order's trace", "order", o.ID, "error", err)
		return &waterfall{Problem: "The tracing backend did not answer; the trace is not shown."}
	}
	if len(traces) == 0 {
		return &waterfall{Problem: "No trace of this order yet: spans reach the tracing backend in batches every few seconds. Reload the page."}
	}
	// One trace created the order; should a backend answer more, the
	// first to start is the creation.
	first := slices.MinFunc(traces, func(a, b jaegerquery.Trace) int { return a.Start().Compare(b.Start()) })
	return newWaterfall(first)
}

// newWaterfall lays t out: spans depth first from the roots, siblings by
// start, each placed on the axis from the first span's start to the last
// one's end. A span whose parent Jaeger does not hold (not exported yet,
// or dropped) is drawn as a root.
func newWaterfall(t jaegerquery.Trace) *waterfall {
	w := &waterfall{TraceID: t.ID()}
	if len(t) == 0 {
		w.Problem = "The trace has no spans."
		return w
	}
	begin, end := t.Start(), time.Time{}
	children := map[string][]jaegerquery.Span{}
	for _, s := range t {
		parent := s.ParentID
		if _, ok := t.Span(parent); !ok {
			parent = ""
		}
		children[parent] = append(children[parent], s)
		if e := s.Start.Add(s.Duration); e.After(end) {
			end = e
		}
	}
	total := max(end.Sub(begin), time.Microsecond)
	w.Total = milliseconds(total)
	// Seen guards against a trace whose span ids repeat: each id is walked
	// once.
	seen := map[string]bool{}
	var walk func(parent string, depth int)
	walk = func(parent string, depth int) {
		spans := children[parent]
		slices.SortStableFunc(spans, func(a, b jaegerquery.Span) int {
			return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.SpanID, b.SpanID))
		})
		for _, s := range spans {
			if seen[s.SpanID] {
				continue
			}
			seen[s.SpanID] = true
			if !slices.Contains(w.Services, s.Service) {
				w.Services = append(w.Services, s.Service)
			}
			x := 100 * float64(s.Start.Sub(begin)) / float64(total)
			width := max(100*float64(s.Duration)/float64(total), 0.2) // a short span stays visible
			w.Rows = append(w.Rows, spanRow{
				Depth: min(depth, maxDepth), Service: s.Service, Name: s.Name,
				Offset: milliseconds(s.Start.Sub(begin)), Duration: milliseconds(s.Duration),
				X: fmt.Sprintf("%.2f", x), Width: fmt.Sprintf("%.2f", min(width, 100-x)), Error: s.Error,
			})
			walk(s.SpanID, depth+1)
		}
	}
	walk("", 0)
	return w
}

// milliseconds writes d in ms with one decimal, e.g. "12.3 ms".
func milliseconds(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
