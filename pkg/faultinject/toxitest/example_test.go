package toxitest_test

import (
	"net/http"
	"testing"

	"github.com/microshop/microshop/pkg/faultinject/toxitest"
)

// testSlowUpstream is how a test puts a fault between a client and its
// server: a proxy in front of the server, the client pointed at the proxy,
// then toxics added and removed while the test runs.
func testSlowUpstream(t *testing.T, serverAddr string) {
	tp := toxitest.Start(t)
	proxy := tp.Proxy(t, "psp", serverAddr)
	client := &http.Client{} // the code under test, given "http://" + proxy.Listen

	if _, err := proxy.AddToxic("slow", "latency", "downstream", 1, map[string]any{"latency": 500}); err != nil {
		t.Fatal(err)
	}
	_, _ = client.Get("http://" + proxy.Listen + "/charges") // half a second late
	if err := proxy.RemoveToxic("slow"); err != nil {
		t.Fatal(err)
	}
}

// Example shows the calls a test makes (see testSlowUpstream). It has no
// Output comment: an Example gets no *testing.T, and toxitest needs one.
func Example() {
	_ = testSlowUpstream
}
