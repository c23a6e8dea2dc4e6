package toxitest_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"github.com/microshop/microshop/pkg/faultinject/toxitest"
)

// TestToxics sends a request through a proxy with each kind of toxic the
// breaker tests use, and checks the fault really happens.
func TestToxics(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "pong")
	}))
	defer upstream.Close()
	tp := toxitest.Start(t)
	proxy := tp.Proxy(t, "pong", strings.TrimPrefix(upstream.URL, "http://"))

	tests := []struct {
		name        string
		toxic       string
		stream      string
		attrs       toxiclient.Attributes
		wantErr     error         // nil: the request succeeds
		wantAtLeast time.Duration // it takes at least this long
	}{
		{name: "no toxic"},
		{name: "latency", toxic: "latency", stream: "downstream", attrs: toxiclient.Attributes{"latency": 200}, wantAtLeast: 200 * time.Millisecond},
		{name: "reset_peer", toxic: "reset_peer", stream: "upstream", attrs: toxiclient.Attributes{"timeout": 0}, wantErr: syscall.ECONNRESET},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.toxic != "" {
				if _, err := proxy.AddToxic(tt.name, tt.toxic, tt.stream, 1, tt.attrs); err != nil {
					t.Fatalf("add toxic: %v", err)
				}
				defer func() {
					if err := proxy.RemoveToxic(tt.name); err != nil {
						t.Errorf("remove toxic: %v", err)
					}
				}()
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			start := time.Now()
			resp, err := client.Get("http://" + proxy.Listen + "/ping")
			took := time.Since(start)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("GET through the proxy: %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("GET through the proxy: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "pong" {
				t.Errorf("body = %q, want pong", body)
			}
			if took < tt.wantAtLeast {
				t.Errorf("took %v, want at least %v of added latency", took, tt.wantAtLeast)
			}
		})
	}
}
