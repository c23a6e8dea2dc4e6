package labs

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// span is a span as Jaeger's query API returns it, flattened.
type span struct {
	traceID, id, parent string
	name, service, kind string
	tags                map[string]any
}

// trace is the spans of one trace.
type trace []span

// byID returns the span of id, and whether the trace has it.
func (tr trace) byID(id string) (span, bool) {
	i := slices.IndexFunc(tr, func(s span) bool { return s.id == id })
	if i < 0 {
		return span{}, false
	}
	return tr[i], true
}

// services returns which of want have spans in tr, in want's order.
func (tr trace) services(want []string) []string {
	var have []string
	for _, name := range want {
		if slices.ContainsFunc(tr, func(s span) bool { return s.service == name }) {
			have = append(have, name)
		}
	}
	return have
}

// roots counts the spans whose parent is not in the trace: 1 for a whole
// tree, more while some spans have not reached Jaeger yet.
func (tr trace) roots() int {
	n := 0
	for _, s := range tr {
		if _, ok := tr.byID(s.parent); !ok {
			n++
		}
	}
	return n
}

// tag returns a span's tag as a string ("" when absent).
func (s span) tag(key string) string {
	v, ok := s.tags[key]
	if !ok {
		return ""
	}
	if str, ok := v.(string); ok {
		return str
	}
	return fmt.Sprint(v)
}

// jaegerTraces is the query API's answer: traces with their spans and the
// processes (services) that sent them.
type jaegerTraces struct {
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

func (j jaegerTraces) traces() []trace {
	var all []trace
	for _, d := range j.Data {
		var tr trace
		for _, s := range d.Spans {
			sp := span{traceID: s.TraceID, id: s.SpanID, name: s.OperationName,
				service: d.Processes[s.ProcessID].ServiceName, tags: map[string]any{}}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					sp.parent = r.SpanID
				}
			}
			for _, t := range s.Tags {
				sp.tags[t.Key] = t.Value
			}
			sp.kind = sp.tag("span.kind")
			tr = append(tr, sp)
		}
		all = append(all, tr)
	}
	return all
}

// findTraces searches Jaeger for the traces of service (and operation, if
// not empty) with every tag of tags, started in the last lookback, at most
// limit of them, as GET /api/traces?service=… does for a user.
func findTraces(ctx context.Context, jaeger, service, operation string, tags map[string]string, lookback time.Duration, limit int) ([]trace, error) {
	if jaeger == "" {
		return nil, fmt.Errorf("no Jaeger address: is make run-full running?")
	}
	q := url.Values{}
	q.Set("service", service)
	if operation != "" {
		q.Set("operation", operation)
	}
	if len(tags) > 0 {
		b, err := json.Marshal(tags)
		if err != nil {
			return nil, err
		}
		q.Set("tags", string(b))
	}
	now := time.Now()
	q.Set("start", strconv.FormatInt(now.Add(-lookback).UnixMicro(), 10))
	q.Set("end", strconv.FormatInt(now.Add(time.Minute).UnixMicro(), 10))
	q.Set("limit", strconv.Itoa(limit))
	var resp jaegerTraces
	if err := getJSON(ctx, jaeger+"/api/traces?"+q.Encode(), &resp); err != nil {
		return nil, fmt.Errorf("search Jaeger: %w", err)
	}
	return resp.traces(), nil
}
