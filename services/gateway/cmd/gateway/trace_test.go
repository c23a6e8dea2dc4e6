package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeJaeger answers Jaeger's trace search (/api/traces) with answer, and
// records the queries it was asked.
type fakeJaeger struct {
	answer string
	mu     sync.Mutex
	asked  []url.Values
}

func (f *fakeJaeger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/traces" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.asked = append(f.asked, r.URL.Query())
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(f.answer))
}

// A checkout's trace as Jaeger's query API answers it (times in µs): the
// gateway's request, order's, the saga's messages to inventory and payment,
// payment's call to the PSP; a span name with markup; a span whose parent
// Jaeger does not hold.
const checkoutTrace = `{"data": [{"traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spans": [
 {"spanID": "a1", "operationName": "POST /api/v1/orders", "references": [], "startTime": 1795000000000000, "duration": 40000, "processID": "p1", "tags": []},
 {"spanID": "b1", "operationName": "POST /v1/orders", "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "a1"}], "startTime": 1795000000005000, "duration": 20000, "processID": "p2", "tags": [{"key": "order.id", "type": "string", "value": "01890000-0000-7000-8000-000000000001"}]},
 {"spanID": "c1", "operationName": "checkout.inventory.commands process", "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b1"}], "startTime": 1795000000050000, "duration": 10000, "processID": "p3", "tags": []},
 {"spanID": "d1", "operationName": "<script>alert(\"span\")</script>", "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "b1"}], "startTime": 1795000000070000, "duration": 25000, "processID": "p4", "tags": [{"key": "otel.status_code", "type": "string", "value": "ERROR"}]},
 {"spanID": "e1", "operationName": "POST /v1/charges", "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "d1"}], "startTime": 1795000000075000, "duration": 15000, "processID": "p5", "tags": []},
 {"spanID": "f1", "operationName": "orphan", "references": [{"refType": "CHILD_OF", "traceID": "4bf92f3577b34da6a3ce929d0e0e4736", "spanID": "zz"}], "startTime": 1795000000100000, "duration": 0, "processID": "p2", "tags": []}
 ],
 "processes": {"p1": {"serviceName": "gateway"}, "p2": {"serviceName": "order"}, "p3": {"serviceName": "inventory"}, "p4": {"serviceName": "payment"}, "p5": {"serviceName": "psp"}}}]}`

// TestOrderTrace: with GATEWAY_JAEGER_URL, the order page asks Jaeger for
// the trace whose order span carries the order's id, around its creation,
// and draws its spans as a waterfall in tree order, every name escaped;
// without an answer it says why, and the page still works.
func TestOrderTrace(t *testing.T) {
	jaeger := &fakeJaeger{answer: checkoutTrace}
	js := httptest.NewServer(jaeger)
	t.Cleanup(js.Close)
	svc := startGatewayWith(t, map[string]string{"GATEWAY_JAEGER_URL": js.URL})
	b := newBrowser(t, svc.URL)
	b.want("POST", "/login", url.Values{"username": {"alice"}, "password": {"alice-demo"}}, http.StatusSeeOther)
	b.want("POST", "/cart", url.Values{"sku": {"MUG-CLASSIC"}}, http.StatusSeeOther)
	_, body := b.want("GET", "/cart", nil, http.StatusOK)
	resp, _ := b.want("POST", "/checkout", url.Values{"card": {"4242424242424242"}, "key": {between(body, `name="key" value="`, `"`)}}, http.StatusSeeOther)
	orderPath := resp.Header.Get("Location")
	orderID := strings.TrimPrefix(orderPath, "/orders/")

	_, body = b.want("GET", orderPath, nil, http.StatusOK)

	// What the page asked: the order service's span tagged with the
	// order's id, within a minute of its creation (the fake order's
	// created_at).
	jaeger.mu.Lock()
	asked := jaeger.asked
	jaeger.mu.Unlock()
	if len(asked) != 1 {
		t.Fatalf("Jaeger was asked %d times, want once: %v", len(asked), asked)
	}
	created := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	wantQuery := url.Values{
		"service": {"order"}, "tags": {`{"order.id":"` + orderID + `"}`},
		"start": {itoa(created.Add(-time.Minute).UnixMicro())}, "end": {itoa(created.Add(time.Minute).UnixMicro())},
		"limit": {"20"},
	}
	if diff := cmp.Diff(wantQuery, asked[0]); diff != "" {
		t.Errorf("the query to Jaeger (-want +got):\n%s", diff)
	}

	// The rows: service, operation, start, duration, in tree order; the
	// orphan is a root of its own.
	type row struct{ Class, Service, Name, Offset, Duration, X, Width string }
	var got []row
	re := regexp.MustCompile(`<tr class="([^"]*)"><td class="service">([^<]*)</td><td class="op">([^<]*)</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td><td class="bar"><svg[^>]*><rect x="([^"]*)" y="1" width="([^"]*)"`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		got = append(got, row{m[1], m[2], m[3], m[4], m[5], m[6], m[7]})
	}
	want := []row{
		{"depth-0 svc-gateway", "gateway", "POST /api/v1/orders", "+0.0 ms", "40.0 ms", "0.00", "40.00"},
		{"depth-1 svc-order", "order", "POST /v1/orders", "+5.0 ms", "20.0 ms", "5.00", "20.00"},
		{"depth-2 svc-inventory", "inventory", "checkout.inventory.commands process", "+50.0 ms", "10.0 ms", "50.00", "10.00"},
		{"depth-2 svc-payment error", "payment", `&lt;script&gt;alert(&#34;span&#34;)&lt;/script&gt;`, "+70.0 ms", "25.0 ms", "70.00", "25.00"},
		{"depth-3 svc-psp", "psp", "POST /v1/charges", "+75.0 ms", "15.0 ms", "75.00", "15.00"},
		{"depth-0 svc-order", "order", "orphan", "+100.0 ms", "0.0 ms", "100.00", "0.00"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the waterfall's rows (-want +got):\n%s\n%s", diff, body)
	}
	if strings.Contains(body, `<script>alert("span")`) {
		t.Errorf("the page holds a span name's raw markup:\n%s", body)
	}
	for _, want := range []string{`<code id="trace-id">4bf92f3577b34da6a3ce929d0e0e4736</code>`,
		"6 spans over 100.0 ms from <strong>gateway</strong>, <strong>order</strong>, <strong>inventory</strong>, <strong>payment</strong>, <strong>psp</strong>"} {
		if !strings.Contains(body, want) {
			t.Errorf("the order page lacks %s:\n%s", want, body)
		}
	}

	// No trace yet, and a broken Jaeger: the page says so and still shows
	// the order.
	for answer, want := range map[string]string{
		`{"data": []}`: "No trace of this order yet",
		`not json`:     "The tracing backend did not answer",
	} {
		jaeger.mu.Lock()
		jaeger.answer = answer
		jaeger.mu.Unlock()
		_, body = b.want("GET", orderPath, nil, http.StatusOK)
		if !strings.Contains(body, `id="trace-problem">`+want) || !strings.Contains(body, `id="status">`) || strings.Contains(body, `id="waterfall"`) {
			t.Errorf("Jaeger answering %q: the page does not say %q beside the order:\n%s", answer, want, body)
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
