// Package jaegerquery reads traces from Jaeger's query service: its HTTP
// JSON API (/api/traces), the one Jaeger's own web UI reads, served by
// Jaeger v1 and v2 on the query port (16686). The storefront's order page,
// the workshop's checks and the tests that look a trace up all read it
// through this package.
package jaegerquery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Client asks one Jaeger query service. Create it with New; it is safe for
// concurrent use.
type Client struct {
	base string
	http *http.Client
}

// New returns a Client of the query service at baseURL (e.g.
// http://127.0.0.1:16686), asking it through hc (http.DefaultClient if
// nil). Calls are bounded by their context only: give them a deadline.
func New(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("jaeger: %q is not an http(s) URL", baseURL)
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(u.String(), "/"), http: hc}, nil
}

// Query selects traces: those with a span of Service (named Operation, if
// not empty) that has every tag of Tags, started between Start and End.
type Query struct {
	Service    string
	Operation  string
	Tags       map[string]string
	Start, End time.Time
	// Limit is the most traces answered; 0 means 20.
	Limit int
}

// Trace is the spans of one trace that Jaeger holds, in its order.
type Trace []Span

// Span is one span of a trace.
type Span struct {
	TraceID  string
	SpanID   string
	ParentID string // "" for a root; may name a span Jaeger does not hold (yet)
	Service  string // the process's service.name
	Name     string // the operation
	Kind     string // the span.kind tag: server, client, producer, consumer, internal
	Start    time.Time
	Duration time.Duration
	// Error is true when the span's status is an error (otel.status_code
	// ERROR, or Jaeger's error tag).
	Error bool
	Tags  map[string]any
}

// ErrBadAnswer wraps an answer of Jaeger that is not its JSON.
var ErrBadAnswer = errors.New("jaeger: unexpected answer")

// ErrNotFound: Jaeger holds no span of the trace asked for.
var ErrNotFound = errors.New("jaeger: trace not found")

// Find answers the traces q selects, each with all its spans.
func (c *Client) Find(ctx context.Context, q Query) ([]Trace, error) {
	limit := q.Limit
	if limit == 0 {
		limit = 20
	}
	v := url.Values{
		"service": {q.Service},
		"start":   {strconv.FormatInt(q.Start.UnixMicro(), 10)},
		"end":     {strconv.FormatInt(q.End.UnixMicro(), 10)},
		"limit":   {strconv.Itoa(limit)},
	}
	if q.Operation != "" {
		v.Set("operation", q.Operation)
	}
	if len(q.Tags) > 0 {
		tags, err := json.Marshal(q.Tags)
		if err != nil {
			return nil, err
		}
		v.Set("tags", string(tags))
	}
	traces, err := c.get(ctx, "/api/traces?"+v.Encode())
	if err != nil {
		return nil, fmt.Errorf("jaeger: find traces: %w", err)
	}
	return traces, nil
}

// Trace answers the spans of the trace of traceID (32 hex digits); a trace
// Jaeger does not hold is ErrNotFound.
func (c *Client) Trace(ctx context.Context, traceID string) (Trace, error) {
	traces, err := c.get(ctx, "/api/traces/"+url.PathEscape(traceID))
	if err != nil {
		return nil, fmt.Errorf("jaeger: trace %s: %w", traceID, err)
	}
	var tr Trace
	for _, t := range traces {
		tr = append(tr, t...)
	}
	if len(tr) == 0 {
		return nil, fmt.Errorf("trace %s: %w", traceID, ErrNotFound)
	}
	return tr, nil
}

// Services answers the services Jaeger holds spans of.
func (c *Client) Services(ctx context.Context) ([]string, error) {
	var answer struct {
		Data []string `json:"data"`
	}
	if err := c.getJSON(ctx, "/api/services", &answer); err != nil {
		return nil, fmt.Errorf("jaeger: services: %w", err)
	}
	return answer.Data, nil
}

func (c *Client) get(ctx context.Context, path string) ([]Trace, error) {
	var answer struct {
		Data []wireTrace `json:"data"`
	}
	if err := c.getJSON(ctx, path, &answer); err != nil {
		if errors.Is(err, errStatusNotFound) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	traces := make([]Trace, 0, len(answer.Data))
	for _, wt := range answer.Data {
		traces = append(traces, wt.trace())
	}
	return traces, nil
}

var errStatusNotFound = errors.New("404 Not Found")

func (c *Client) getJSON(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return err
	}
	switch {
	case len(body) > maxAnswer:
		return fmt.Errorf("%w: over %d bytes", ErrBadAnswer, maxAnswer)
	case resp.StatusCode == http.StatusNotFound:
		return errStatusNotFound
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("%w: %s", ErrBadAnswer, resp.Status)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("%w: %v", ErrBadAnswer, err)
	}
	return nil
}

// maxAnswer bounds what is read of an answer: a checkout's trace is a few
// dozen spans, a search of fifty such traces far below it.
const maxAnswer = 16 << 20

// wireTrace is a trace in Jaeger's JSON (its UI model).
type wireTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		TraceID       string `json:"traceID"`
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType string `json:"refType"`
			TraceID string `json:"traceID"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
		StartTime int64 `json:"startTime"` // µs since the epoch
		Duration  int64 `json:"duration"`  // µs
		Tags      []struct {
			Key   string `json:"key"`
			Value any    `json:"value"`
		} `json:"tags"`
		ProcessID string `json:"processID"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func (wt wireTrace) trace() Trace {
	t := make(Trace, 0, len(wt.Spans))
	for _, ws := range wt.Spans {
		s := Span{
			TraceID: cmp.Or(ws.TraceID, wt.TraceID), SpanID: ws.SpanID,
			Service: wt.Processes[ws.ProcessID].ServiceName, Name: ws.OperationName,
			Start: time.UnixMicro(ws.StartTime).UTC(), Duration: time.Duration(ws.Duration) * time.Microsecond,
			Tags: make(map[string]any, len(ws.Tags)),
		}
		for _, r := range ws.References {
			if r.RefType == "CHILD_OF" && (r.TraceID == "" || r.TraceID == s.TraceID) {
				s.ParentID = r.SpanID
				break
			}
		}
		for _, tag := range ws.Tags {
			s.Tags[tag.Key] = tag.Value
		}
		s.Kind = s.Tag("span.kind")
		s.Error = s.Tag("otel.status_code") == "ERROR" || s.Tags["error"] == true
		t = append(t, s)
	}
	return t
}

// Tag returns a span's tag written as a string ("" when absent).
func (s Span) Tag(key string) string {
	v := s.Tags[key]
	if v == nil {
		return ""
	}
	if str, ok := v.(string); ok {
		return str
	}
	return fmt.Sprint(v)
}

// ID is the trace's id ("" for no spans).
func (tr Trace) ID() string {
	if len(tr) == 0 {
		return ""
	}
	return tr[0].TraceID
}

// Span returns the span of id, and whether the trace has it.
func (tr Trace) Span(id string) (Span, bool) {
	i := slices.IndexFunc(tr, func(s Span) bool { return s.SpanID == id })
	if i < 0 {
		return Span{}, false
	}
	return tr[i], true
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

// Services returns which of want have spans in tr, in want's order.
func (tr Trace) Services(want []string) []string {
	var have []string
	for _, name := range want {
		if slices.ContainsFunc(tr, func(s Span) bool { return s.Service == name }) {
			have = append(have, name)
		}
	}
	return have
}

// Roots returns the spans whose parent is not in the trace: one for a
// whole tree, more while some spans have not reached Jaeger yet.
func (tr Trace) Roots() []Span {
	var roots []Span
	for _, s := range tr {
		if _, ok := tr.Span(s.ParentID); !ok {
			roots = append(roots, s)
		}
	}
	return roots
}

// Start is when the trace's first span started (zero for no spans).
func (tr Trace) Start() time.Time {
	var first time.Time
	for _, s := range tr {
		if first.IsZero() || s.Start.Before(first) {
			first = s.Start
		}
	}
	return first
}

// String lists the spans, one a line.
func (tr Trace) String() string {
	var b strings.Builder
	for _, sp := range tr {
		fmt.Fprintf(&b, "  %s parent=%s %s %s %q\n", sp.SpanID, sp.ParentID, sp.Service, sp.Kind, sp.Name)
	}
	return b.String()
}
