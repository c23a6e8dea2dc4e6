package process_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/microshop/microshop/pkg/process"
)

// TestHealthcheck checks the healthcheck mode against servers that are
// ready, not ready and absent, including a wildcard listen address probed
// on the loopback interface.
func TestHealthcheck(t *testing.T) {
	serve := func(status int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/readyz" {
				http.NotFound(w, r)
				return
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}
	ready, notReady := serve(http.StatusOK), serve(http.StatusServiceUnavailable)
	_, readyPort, _ := net.SplitHostPort(ready)
	closed := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()

	tests := []struct {
		name     string
		httpAddr string // HELLO_HTTP_ADDR; empty: unset
		def      string // the program's default
		wantOK   bool
	}{
		{"ready", ready, "", true},
		{"ready at the default address", "", ready, true},
		{"ready, listening on every interface", "0.0.0.0:" + readyPort, "", true},
		{"not ready", notReady, "", false},
		{"nothing listening", closed, "", false},
		{"invalid address", "nowhere", ready, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "HELLO_HTTP_ADDR" {
					return tt.httpAddr
				}
				return ""
			}
			err := process.Healthcheck(t.Context(), "hello", tt.def, getenv)
			if got := err == nil; got != tt.wantOK {
				t.Errorf("Healthcheck: %v, want ok=%v", err, tt.wantOK)
			}
		})
	}
}
