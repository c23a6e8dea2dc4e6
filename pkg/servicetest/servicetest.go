// Package servicetest runs a microshop service's run function in-process for
// wiring tests: the whole service, with its real dependencies, behind a real
// listener, stopped the way SIGINT stops it.
package servicetest

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/logtest"
)

// RunFunc is the signature of every service's run (see STYLE.md).
type RunFunc func(ctx context.Context, getenv func(string) string, stdout io.Writer) error

// Service is a service started by Start.
type Service struct {
	// URL is the service's base URL, e.g. "http://127.0.0.1:41234".
	URL    string
	logs   *logtest.Buffer
	cancel context.CancelFunc
	done   chan error
}

// FreeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start runs run with env (unset keys read as ""), listening on env[addrKey],
// and waits until GET /readyz answers 200. If run returns early or readiness
// does not come within 30s, the test fails with the service's logs. The
// service is stopped at cleanup if the test has not stopped it.
func Start(t testing.TB, run RunFunc, env map[string]string, addrKey string) *Service {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{URL: "http://" + env[addrKey], logs: &logtest.Buffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- run(ctx, func(k string) string { return env[k] }, s.logs) }()
	t.Cleanup(func() { _ = s.Stop() })

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-s.done:
			s.done <- err // keep it for Stop
			t.Fatalf("run returned before becoming ready: %v\nlogs:\n%s", err, s.Logs())
		default:
		}
		if resp, err := http.Get(s.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz not 200 within 30s\nlogs:\n%s", s.URL, s.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop cancels the service's context, as SIGINT does, and returns what run
// returned. Calling it again returns the same result.
func (s *Service) Stop() error {
	s.cancel()
	err := <-s.done
	s.done <- err
	return err
}

// Logs returns everything the service has written to stdout so far.
func (s *Service) Logs() string { return s.logs.String() }
