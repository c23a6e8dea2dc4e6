package jaegerquery_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
)

// answer is a trace as Jaeger's query API writes it: the gateway's server
// span, order's child of it, and a consumer span whose parent has not
// reached Jaeger.
const answer = `{"data":[{"traceID":"t1","spans":[
 {"traceID":"t1","spanID":"a","operationName":"POST /api/v1/orders","references":[],"startTime":1000000,"duration":5000,
  "tags":[{"key":"span.kind","type":"string","value":"server"}],"processID":"p1"},
 {"traceID":"t1","spanID":"b","operationName":"saga start","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"a"}],
  "startTime":1001000,"duration":2000,"tags":[{"key":"otel.status_code","type":"string","value":"ERROR"},{"key":"saga.attempt","type":"int64","value":2}],"processID":"p2"},
 {"traceID":"t1","spanID":"c","operationName":"process checkout.replies","references":[{"refType":"CHILD_OF","traceID":"t1","spanID":"zz"}],
  "startTime":999000,"duration":1000,"tags":[{"key":"span.kind","type":"string","value":"consumer"},{"key":"error","type":"bool","value":true}],"processID":"p2"}],
 "processes":{"p1":{"serviceName":"gateway"},"p2":{"serviceName":"order"}}}]}`

func TestClient(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.String())
		switch r.URL.Path {
		case "/api/traces", "/api/traces/t1":
			w.Write([]byte(answer))
		case "/api/services":
			w.Write([]byte(`{"data":["gateway","order"]}`))
		case "/api/traces/broken":
			w.Write([]byte(`<html>`))
		default:
			http.Error(w, `{"errors":[{"code":404,"msg":"trace not found"}]}`, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	c, err := jaegerquery.New(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	start := time.UnixMicro(1_700_000_000_000_000)
	traces, err := c.Find(ctx, jaegerquery.Query{Service: "order", Operation: "saga start",
		Tags: map[string]string{"order.id": "o-1"}, Start: start, End: start.Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	wantQuery := "/api/traces?end=1700000001000000&limit=20&operation=saga+start&service=order&start=1700000000000000&tags=%7B%22order.id%22%3A%22o-1%22%7D"
	if len(asked) != 1 || asked[0] != wantQuery {
		t.Errorf("asked %q, want %q", asked, wantQuery)
	}
	if len(traces) != 1 || len(traces[0]) != 3 {
		t.Fatalf("traces: %v", traces)
	}
	tr := traces[0]
	if tr.ID() != "t1" {
		t.Errorf("ID %q", tr.ID())
	}
	b, ok := tr.Span("b")
	if !ok || b.ParentID != "a" || b.Service != "order" || !b.Error || b.Tag("saga.attempt") != "2" ||
		b.Duration != 2*time.Millisecond || !b.Start.Equal(time.UnixMicro(1001000)) {
		t.Errorf("span b: %+v", b)
	}
	if a, _ := tr.Span("a"); a.Kind != "server" || a.Error || a.Service != "gateway" {
		t.Errorf("span a: %+v", a)
	}
	if c, _ := tr.Span("c"); !c.Error || c.Kind != "consumer" {
		t.Errorf("span c: %+v", c)
	}
	roots := tr.Roots()
	if len(roots) != 2 || roots[0].SpanID != "a" || roots[1].SpanID != "c" {
		t.Errorf("roots %v, want a and c (whose parent Jaeger does not hold)", roots)
	}
	if got := tr.Services([]string{"order", "psp", "gateway"}); !slices.Equal(got, []string{"order", "gateway"}) {
		t.Errorf("Services: %v", got)
	}
	if got := tr.Start(); !got.Equal(time.UnixMicro(999000)) {
		t.Errorf("Start %v", got)
	}
	if len(tr.ByName("saga start")) != 1 {
		t.Errorf("ByName: %v", tr.ByName("saga start"))
	}

	if tr, err := c.Trace(ctx, "t1"); err != nil || len(tr) != 3 {
		t.Errorf("Trace(t1): %v, %v", tr, err)
	}
	if _, err := c.Trace(ctx, "unknown"); !errors.Is(err, jaegerquery.ErrNotFound) {
		t.Errorf("Trace(unknown): %v, want ErrNotFound", err)
	}
	if _, err := c.Trace(ctx, "broken"); !errors.Is(err, jaegerquery.ErrBadAnswer) {
		t.Errorf("Trace(broken): %v, want ErrBadAnswer", err)
	}
	if s, err := c.Services(ctx); err != nil || !slices.Equal(s, []string{"gateway", "order"}) {
		t.Errorf("Services: %v, %v", s, err)
	}
	if _, err := jaegerquery.New("127.0.0.1:16686", nil); err == nil {
		t.Error("New of a URL without a scheme: no error")
	}
}
