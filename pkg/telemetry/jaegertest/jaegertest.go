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
	"encoding/json"
	"fmt"
	"net"
	"net/http"
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

// Span is a span as the query API returns it, flattened.
type Span struct {
	TraceID  string
	SpanID   string
	ParentID string // "" for a root span
	Name     string // operationName
	Service  string // the process's service.name
	Kind     string // span.kind tag: server, client, producer, consumer, internal
	Tags     map[string]any
}

// Trace is the spans of one trace.
type Trace []Span

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
	var services struct{ Data []string }
	if err := j.get(ctx, "/api/services", &services); err != nil {
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
	var resp struct {
		Data []struct {
			Spans []struct {
				TraceID       string `json:"traceID"`
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				ProcessID     string `json:"processID"`
				References    []struct {
					RefType string `json:"refType"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
				Tags []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := j.get(ctx, "/api/traces/"+traceID, &resp); err != nil {
		return nil, err
	}
	var tr Trace
	for _, d := range resp.Data {
		for _, s := range d.Spans {
			span := Span{TraceID: s.TraceID, SpanID: s.SpanID, Name: s.OperationName,
				Service: d.Processes[s.ProcessID].ServiceName, Tags: map[string]any{}}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					span.ParentID = r.SpanID
				}
			}
			for _, tag := range s.Tags {
				span.Tags[tag.Key] = tag.Value
			}
			span.Kind, _ = span.Tags["span.kind"].(string)
			tr = append(tr, span)
		}
	}
	return tr, nil
}

// String lists the spans, one a line.
func (tr Trace) String() string {
	s := ""
	for _, sp := range tr {
		s += fmt.Sprintf("  %s parent=%s %s %s %q\n", sp.SpanID, sp.ParentID, sp.Service, sp.Kind, sp.Name)
	}
	return s
}

// ByName returns the spans named name.
func (tr Trace) ByName(name string) []Span {
	var spans []Span
	for _, s := range tr {
		if s.Name == name {
			spans = append(spans, s)
		}
	}
	return spans
}

// Span returns the span of id, and whether there is one.
func (tr Trace) Span(id string) (Span, bool) {
	for _, s := range tr {
		if s.SpanID == id {
			return s, true
		}
	}
	return Span{}, false
}

func (j *Jaeger) get(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.QueryURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
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
