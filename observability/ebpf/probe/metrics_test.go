package probe

import (
	"testing"
	"unsafe"
)

func TestRoutes(t *testing.T) {
	r, err := newRoutes([]string{"GET /api/v1/orders/{id}", "/api/v1/products", "POST /api/v1/orders"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, path, want string
	}{
		{"GET", "/api/v1/orders/42", "/api/v1/orders/{id}"},
		{"GET", "/api/v1/products", "/api/v1/products"},
		{"DELETE", "/api/v1/products", "/api/v1/products"},
		{"POST", "/api/v1/orders", "/api/v1/orders"},
		{"DELETE", "/api/v1/orders/42", "unmatched"},
		{"GET", "/elsewhere", "unmatched"},
	}
	for _, tt := range tests {
		if got := r.route(tt.method, tt.path); got != tt.want {
			t.Errorf("route(%s %s) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
	var none *routes // no patterns: the path is the route
	if got := none.route("GET", "/api/v1/orders/42"); got != "/api/v1/orders/42" {
		t.Errorf("route without patterns = %q, want the path", got)
	}
}

func TestRoutesRejectsBadPatterns(t *testing.T) {
	for _, patterns := range [][]string{{"GET /a/{"}, {"/a", "/a"}} {
		if _, err := newRoutes(patterns); err == nil {
			t.Errorf("newRoutes(%q) = nil error", patterns)
		}
	}
}

func TestHTTPLabels(t *testing.T) {
	event := func(method, path string, status uint16, known, truncated bool) *httpHttpEvent {
		e := &httpHttpEvent{Status: status, MethodLen: uint8(len(method)), PathLen: uint8(len(path))}
		for i := range len(method) {
			e.Method[i] = int8(method[i])
		}
		for i := range len(path) {
			e.Path[i] = int8(path[i])
		}
		if known {
			e.ResponseKnown = 1
		}
		if truncated {
			e.PathTruncated = 1
		}
		return e
	}
	tests := []struct {
		name                       string
		e                          *httpHttpEvent
		method, path, statusString string
	}{
		{"written status", event("POST", "/orders", 201, true, false), "POST", "/orders", "201"},
		{"nothing written", event("GET", "/empty", 0, true, false), "GET", "/empty", "200"},
		{"another writer type", event("GET", "/h2", 0, false, false), "GET", "/h2", "unknown"},
		{"long path", event("GET", "/a/b", 404, true, true), "GET", "/a/b...", "404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, status := httpLabels(tt.e)
			if method != tt.method || path != tt.path || status != tt.statusString {
				t.Errorf("httpLabels = %q %q %q, want %q %q %q", method, path, status, tt.method, tt.path, tt.statusString)
			}
		})
	}
}

func TestPeer(t *testing.T) {
	v4 := [16]uint8{10, 0, 0, 7}
	v6 := [16]uint8{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	mapped := [16]uint8{10: 0xff, 11: 0xff, 12: 127, 15: 1}
	tests := []struct {
		name string
		e    tcpTcpEvent
		want string
	}{
		{"IPv4 outbound", tcpTcpEvent{Family: 2, Dport: 8082, Daddr: v4}, "10.0.0.7:8082"},
		{"IPv4 inbound", tcpTcpEvent{Family: 2, Dport: 51234, Inbound: 1, Daddr: v4}, "10.0.0.7"},
		{"IPv6 outbound", tcpTcpEvent{Family: 10, Dport: 443, Daddr: v6}, "[2001:db8::1]:443"},
		{"IPv4-mapped IPv6", tcpTcpEvent{Family: 10, Dport: 80, Daddr: mapped}, "127.0.0.1:80"},
	}
	for _, tt := range tests {
		if got := peer(&tt.e); got != tt.want {
			t.Errorf("%s: peer = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// BenchmarkHTTPEvent is the reader's cost of one HTTP event: from the
// record of the ring buffer to the histogram observed.
func BenchmarkHTTPEvent(b *testing.B) {
	m, err := newMetrics([]string{"GET /api/v1/orders/{id}", "/api/v1/products", "/healthz"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	var e httpHttpEvent
	e.MethodLen = uint8(copy(asBytes(e.Method[:]), "GET"))
	e.PathLen = uint8(copy(asBytes(e.Path[:]), "/api/v1/orders/42"))
	e.ResponseKnown, e.Status, e.DurationNs = 1, 200, 1500000
	b.ReportAllocs()
	for b.Loop() {
		m.http("gateway", &e)
	}
}

// asBytes is s as bytes, the same memory.
func asBytes(s []int8) []byte { return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)) }
