package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/observability/dashboards"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/pkg/telemetry/jaegertest"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/gateway/apitest"
)

// observabilityTools returns the Jaeger and Prometheus binaries the full
// stack is started with. Without them it skips the test on a developer's
// machine and fails it in CI (make test builds and installs both first).
func observabilityTools(t *testing.T) (jaeger, prometheus string) {
	t.Helper()
	jaeger = servicetest.Tool(t, "jaeger", "JAEGER_BIN", "make slow-tools")
	prometheus, err := exec.LookPath("prometheus")
	servicetest.Require(t, "prometheus (make prometheus)", err)
	return jaeger, prometheus
}

// checkout is an order placed by observe with a trace id of the test's own,
// and what its trace must show.
type checkout struct {
	name, card string
	// wantStatus is the order's final status.
	wantStatus string
	// wantSpans are span names the trace must hold, saga steps included.
	wantSpans []string
	// wantServices are the processes with spans in the trace.
	wantServices []string

	traceID, parentID, orderID string
}

// observe places a checkout of each kind with a traceparent of its own, and
// checks what a user watching the stack sees: each checkout as one trace in
// Jaeger, across the services and the broker, in the right parent/child
// order, with its saga steps and compensations; a log line of a handled
// message with the trace id; and every query of the dashboards and of the
// rules answered by Prometheus with data; and every process's metrics
// (processes: name → base URL) as promtool wants them.
func observe(t *testing.T, processes map[string]string, jaegerURL, prometheusURL string, l *launcher) {
	gateway := processes["gateway"]
	action := func(step string) string { return "saga action " + step }
	compensate := func(step string) string { return "saga compensate " + step }
	all := []string{"gateway", "order", "inventory", "payment", "psp"}
	checkouts := []*checkout{
		{name: "good card", card: apitest.GoodCard, wantStatus: "CONFIRMED", wantServices: all,
			wantSpans: []string{action(checkoutv1.StepReserveStock), action(checkoutv1.StepChargePayment), action(checkoutv1.StepCommitReservation)}},
		{name: "declined card", card: "4000000000000002", wantStatus: "CANCELLED", wantServices: all,
			wantSpans: []string{action(checkoutv1.StepReserveStock), action(checkoutv1.StepChargePayment), compensate(checkoutv1.StepReserveStock)}},
		// The PSP holds the hanging card's charge past the charge
		// deadline: the order cancels it on its own, from the trace
		// context saved at the start, and compensates both steps.
		{name: "hanging card", card: hangingCard, wantStatus: "CANCELLED", wantServices: []string{"gateway", "order", "inventory", "payment"},
			wantSpans: []string{action(checkoutv1.StepChargePayment), "saga deadline " + checkoutv1.StepChargePayment,
				compensate(checkoutv1.StepChargePayment), compensate(checkoutv1.StepReserveStock)}},
	}

	c, alice, sku := aliceShopping(t, gateway)
	for _, co := range checkouts {
		co.traceID, co.parentID = randomHex(t, 16), randomHex(t, 8)
		resp := c.Do(t, apitest.Request{Method: "POST", Path: "/api/v1/orders",
			Header: map[string]string{
				"Authorization": "Bearer " + alice, "Idempotency-Key": "observe-" + co.traceID,
				"traceparent": "00-" + co.traceID + "-" + co.parentID + "-01",
			},
			Body: `{"card_number":"` + co.card + `","lines":[{"sku":"` + sku + `","quantity":1}]}`})
		if resp.Status != http.StatusAccepted {
			t.Fatalf("%s: create order = %d %s", co.name, resp.Status, resp.Body)
		}
		var o struct{ ID string }
		resp.Decode(t, &o)
		co.orderID = o.ID
	}

	jaeger := jaegertest.Jaeger{QueryURL: jaegerURL}
	for _, co := range checkouts {
		t.Run("trace of "+co.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			poll.Until(ctx, t, "order "+co.orderID+" final", func() bool {
				var o struct{ Status string }
				c.Do(t, apitest.Request{Method: "GET", Path: "/api/v1/orders/" + co.orderID, Header: apitest.Bearer(alice)}).Decode(t, &o)
				if o.Status != "PENDING" && o.Status != co.wantStatus {
					t.Fatalf("order ended %s, want %s", o.Status, co.wantStatus)
				}
				return o.Status == co.wantStatus
			})
			tr := jaeger.WaitTrace(ctx, t, co.traceID, func(tr jaegertest.Trace) bool {
				for _, name := range co.wantSpans {
					if len(tr.ByName(name)) == 0 {
						return false
					}
				}
				// One root: every parent a span names has reached Jaeger
				// (a trace read while its last batches are in flight has holes).
				return slices.Equal(tr.Services(co.wantServices), co.wantServices) && len(tr.Roots()) == 1
			})
			checkTree(t, tr, co.parentID)
			checkCausality(t, tr, co)
			t.Logf("%s: %d spans from %v", co.name, len(tr), tr.Services(all))
		})
	}

	t.Run("log line of a handled message", func(t *testing.T) {
		good := checkouts[0]
		// The launcher prefixes each line with its process's name.
		line := regexp.MustCompile(`(?m)^inventory\s+\| .*"msg":"command handled".*"trace_id":"` + good.traceID + `"`)
		if !line.MatchString(l.output()) {
			t.Errorf("no line of inventory's handling of a command carries the trace id %s", good.traceID)
		}
	})

	t.Run("promtool check metrics on every process", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Fatal(err) // installed with prometheus, which this stack runs
		}
		for name, base := range processes {
			resp, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(promtool, "check", "metrics")
			cmd.Stdin = resp.Body
			out, err := cmd.CombinedOutput()
			resp.Body.Close()
			if err != nil || len(out) > 0 {
				t.Errorf("%s: promtool check metrics: %v\n%s", name, err, out)
			}
		}
	})

	t.Run("every dashboard and rule query has data", func(t *testing.T) {
		queries := map[string]string{}  // expression → where it comes from
		_, probed := processes["probe"] // the eBPF probe runs: it could load here
		for _, d := range dashboards.All() {
			if d.UID == "microshop-ebpf" && !probed {
				continue // TestNativeStack says so, and fails under CI
			}
			for _, q := range d.Queries() {
				queries[strings.ReplaceAll(q, dashboards.RateInterval, "1m")] = "dashboard " + d.UID
			}
		}
		for _, r := range rules(t, prometheusURL) {
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s: health %q, last error %q", r.Name, r.Health, r.LastError)
			}
			// An alert's condition is empty while it does not fire;
			// asked with bool comparisons it returns its series, 0 or 1.
			expr := r.Query
			if r.Type == "alerting" {
				expr = boolComparisons(expr)
			}
			queries[expr] = "rule " + r.Name
		}
		// Rates need two scrapes of the counters the checkouts moved, and
		// the recording rules an evaluation after them.
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		poll.UntilNil(ctx, t, "every query with data", func() error {
			var empty []string
			for expr, from := range queries {
				if n := series(t, prometheusURL, expr); n == 0 {
					empty = append(empty, from+": "+expr)
				}
			}
			if len(empty) > 0 {
				slices.Sort(empty)
				return fmt.Errorf("%d of %d queries without data:\n%s", len(empty), len(queries), strings.Join(empty, "\n"))
			}
			return nil
		})
		t.Logf("%d queries, each with data", len(queries))
	})
}

// randomHex returns n random bytes in hex: a W3C trace or span id.
func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// checkTree checks that tr is one tree under the caller's span: exactly one
// span, the gateway's server span, has a parent outside the trace, and that
// parent is the span id the test sent.
func checkTree(t *testing.T, tr jaegertest.Trace, callerSpan string) {
	t.Helper()
	for _, s := range tr {
		if _, ok := tr.Span(s.ParentID); ok {
			continue
		}
		if s.ParentID != callerSpan || s.Service != "gateway" || s.Kind != "server" {
			t.Errorf("span %s %q of %s has parent %q outside the trace; only the gateway's server span may, under the caller's %s\n%s",
				s.SpanID, s.Name, s.Service, s.ParentID, callerSpan, tr)
		}
	}
}

// checkCausality checks that the spans follow the saga: each participant
// handles a command under the step span that sent it (through the outbox,
// the relay's producer span and the broker), the PSP is called from
// payment's handling of the charge, and the next step is sent from the
// handling of the previous one's reply.
func checkCausality(t *testing.T, tr jaegertest.Trace, co *checkout) {
	t.Helper()
	// A participant's span of a command says which step and operation it
	// handled (saga.step, saga.operation); the links are about actions.
	type link struct{ descendant, step, ancestor string }
	inventory, payment := "process "+checkoutv1.TopicInventoryCommands, "process "+checkoutv1.TopicPaymentCommands
	links := []link{
		{"saga start", "", "POST /api/v1/orders"},
		{"saga action " + checkoutv1.StepReserveStock, "", "saga start"},
		{inventory, checkoutv1.StepReserveStock, "saga action " + checkoutv1.StepReserveStock},
		{payment, checkoutv1.StepChargePayment, "saga action " + checkoutv1.StepChargePayment},
		{"saga action " + checkoutv1.StepChargePayment, "", inventory},
	}
	if slices.Contains(co.wantServices, "psp") {
		links = append(links, link{"POST /v1/charges", "", payment})
	}
	for _, l := range links {
		var spans []jaegertest.Span
		for _, s := range tr.ByName(l.descendant) {
			if l.step == "" || s.Tags["saga.step"] == l.step && s.Tags["saga.operation"] == "action" {
				spans = append(spans, s)
			}
		}
		if len(spans) == 0 {
			t.Errorf("no span %q (step %q)\n%s", l.descendant, l.step, tr)
		}
		for _, s := range spans {
			if !hasAncestor(tr, s, l.ancestor) {
				t.Errorf("span %s %q does not descend from %q\n%s", s.SpanID, l.descendant, l.ancestor, tr)
			}
		}
	}
	barriers := 0
	for _, s := range tr {
		if s.Tags["saga.barrier"] != nil {
			barriers++
		}
	}
	if barriers == 0 {
		t.Errorf("no participant span has the attribute saga.barrier\n%s", tr)
	}
}

func hasAncestor(tr jaegertest.Trace, s jaegertest.Span, name string) bool {
	for seen := 0; seen < len(tr); seen++ {
		parent, ok := tr.Span(s.ParentID)
		if !ok {
			return false
		}
		if parent.Name == name {
			return true
		}
		s = parent
	}
	return false
}

// rule is a rule as Prometheus's /api/v1/rules describes it.
type rule struct {
	Name, Query, Type, Health string
	LastError                 string `json:"lastError"`
}

// rules returns every rule Prometheus loaded.
func rules(t *testing.T, prometheusURL string) []rule {
	t.Helper()
	var body struct {
		Data struct{ Groups []struct{ Rules []rule } }
	}
	getJSON(t, prometheusURL+"/api/v1/rules", &body)
	var all []rule
	for _, g := range body.Data.Groups {
		all = append(all, g.Rules...)
	}
	if len(all) == 0 {
		t.Fatal("Prometheus loaded no rules")
	}
	return all
}

// series returns how many series the instant query expr returns; a query
// Prometheus refuses fails the test.
func series(t *testing.T, prometheusURL, expr string) int {
	t.Helper()
	var body struct {
		Status, Error string
		Data          struct{ Result []json.RawMessage }
	}
	getJSON(t, prometheusURL+"/api/v1/query?query="+url.QueryEscape(expr), &body) // a refused query answers 400
	if body.Status != "success" {
		t.Fatalf("query %s: %s", expr, body.Error)
	}
	return len(body.Data.Result)
}

// comparison matches a PromQL comparison operator and what follows it.
var comparison = regexp.MustCompile(`(==|!=|>=|<=|>|<)(\s*)`)

// boolComparisons returns expr with every comparison outside braces and
// strings turned into a bool comparison ("a > 1" into "a > bool 1"), which
// returns each series with 0 or 1 instead of dropping the false ones.
func boolComparisons(expr string) string {
	var b strings.Builder
	depth, quote := 0, byte(0)
	last := 0
	flush := func(end int) {
		b.WriteString(comparison.ReplaceAllString(expr[last:end], "$1 bool "))
		last = end
	}
	for i := 0; i < len(expr); i++ {
		ch := expr[i]
		switch {
		case quote != 0:
			if ch == quote && expr[i-1] != '\\' {
				quote = 0
				b.WriteString(expr[last : i+1])
				last = i + 1
			}
		case ch == '"' || ch == '\'' || ch == '`':
			if depth == 0 {
				flush(i)
			}
			quote = ch
		case ch == '{':
			if depth == 0 {
				flush(i)
			}
			depth++
		case ch == '}':
			depth--
			if depth == 0 {
				b.WriteString(expr[last : i+1])
				last = i + 1
			}
		}
	}
	if depth == 0 && quote == 0 {
		flush(len(expr))
	} else {
		b.WriteString(expr[last:])
	}
	return b.String()
}
