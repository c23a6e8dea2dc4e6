// Package jaegertest gives tests a real Jaeger v2: Start runs the binary
// built by `make slow-tools` (.run/tools/jaeger) with the native stack's
// configuration (observability/jaeger/native.yaml) on free loopback ports,
// and [Jaeger.WaitTrace] reads a trace back through Jaeger's query API, the
// way a user looks one up.
//
// A test that cannot find the binary skips on a developer machine and fails
// under CI (the environment variable CI is non-empty).
package jaegertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
)

// Jaeger is a running Jaeger.
type Jaeger struct {
	// OTLPHTTP is the base URL of the OTLP/HTTP receiver, the value of
	// OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:PORT".
	OTLPHTTP string
	// OTLPGRPC is the URL of the OTLP/gRPC receiver: "http://127.0.0.1:PORT".
	OTLPGRPC string
	// QueryURL is the base URL of the query API: "http://127.0.0.1:PORT".
	QueryURL string
}

// Trace and Span are jaegerquery's: the test reads what a user reads.
type (
	Trace = jaegerquery.Trace
	Span  = jaegerquery.Span
)

// Start runs Jaeger for the test on free ports of 127.0.0.1, waits until it
// answers, and stops it in t.Cleanup. Without the binary it skips the test,
// or fails it under CI.
func Start(t testing.TB) *Jaeger {
	t.Helper()
	bin := servicetest.Tool(t, "jaeger", "JAEGER_BIN", "make slow-tools")
	root, err := servicetest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 4)
	addr := func(i int) string { return "127.0.0.1:" + strconv.Itoa(ports[i]) }
	cmd := exec.Command(bin, "--config", filepath.Join(root, "observability", "jaeger", "native.yaml"))
	cmd.Env = append(os.Environ(),
		"JAEGER_OTLP_HTTP="+addr(0), "JAEGER_OTLP_GRPC="+addr(1),
		"JAEGER_QUERY_HTTP="+addr(2), "JAEGER_QUERY_GRPC="+addr(3))
	logs := &logWriter{t: t}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start jaeger: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logs.stop()
	})
	j := &Jaeger{OTLPHTTP: "http://" + addr(0), OTLPGRPC: "http://" + addr(1), QueryURL: "http://" + addr(2)}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	poll.UntilNil(ctx, t, "jaeger to answer", func() error {
		select {
		case err := <-exited:
			t.Fatalf("jaeger exited while starting: %v", err)
		default:
		}
		return j.ready(ctx)
	})
	return j
}

// ready reports whether both the query API and the OTLP/HTTP receiver answer.
func (j *Jaeger) ready(ctx context.Context) error {
	q, err := j.query()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := q.Services(ctx); err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", j.OTLPHTTP[len("http://"):], time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}

// WaitTrace polls the query API for the trace of traceID (32 hex digits)
// until done returns true for it, and returns it; it fails the test when ctx
// ends first. Spans reach the query API some time after their export.
func (j *Jaeger) WaitTrace(ctx context.Context, t testing.TB, traceID string, done func(Trace) bool) Trace {
	t.Helper()
	var tr Trace
	poll.UntilNil(ctx, t, "trace "+traceID+" in jaeger", func() error {
		var err error
		if tr, err = j.Trace(ctx, traceID); err != nil {
			return err
		}
		if !done(tr) {
			return fmt.Errorf("not complete yet:\n%s", tr)
		}
		return nil
	})
	return tr
}

// Trace returns the spans of the trace of traceID; an unknown trace is an
// error.
func (j *Jaeger) Trace(ctx context.Context, traceID string) (Trace, error) {
	q, err := j.query()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return q.Trace(ctx, traceID)
}

// query is the client of the query API.
func (j *Jaeger) query() (*jaegerquery.Client, error) {
	return jaegerquery.New(j.QueryURL, nil)
}

// freePorts returns n ports of 127.0.0.1 that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range listeners {
		l.Close()
	}
	return ports
}

// logWriter keeps Jaeger's output, to show it if the test failed.
type logWriter struct {
	t  testing.TB
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// stop logs the output kept if the test failed.
func (w *logWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t.Failed() {
		w.t.Logf("jaeger output:\n%s", w.b.String())
	}
}
