package breaker_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/faultinject/toxitest"
	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
)

// These tests put Toxiproxy between an HTTP client guarded by a breaker and
// a healthy test server, on the real clock, and watch the breaker trip on a
// real fault and close again once the fault is gone. They log how long
// tripping and recovering took; they assert no timing.

// faultRules are the rules of the fault tests: a one-second window, five
// calls to decide, half of them slow (over 100ms) or failed trip it, one
// second open, one probe.
var faultRules = breaker.Rules{
	Window:      breaker.Duration(time.Second),
	MinRequests: 5,
	ErrorRatio:  0.5,
	SlowCall:    breaker.Duration(100 * time.Millisecond),
	SlowRatio:   0.5,
	OpenFor:     breaker.Duration(time.Second),
	Probes:      1,
}

// requestRate is the pace of the load: one request every 20ms, 50/s.
const requestRate = 20 * time.Millisecond

func TestFaults(t *testing.T) {
	tests := []struct {
		name     string
		toxic    string
		stream   string
		attrs    toxiclient.Attributes
		strategy string // that trips, as logged
	}{
		{
			name: "latency trips the slow-call breaker", toxic: "latency", stream: "downstream",
			attrs: toxiclient.Attributes{"latency": 300}, strategy: "slow-call ratio",
		},
		{
			name: "connection resets trip the error-ratio breaker", toxic: "reset_peer", stream: "upstream",
			attrs: toxiclient.Attributes{"timeout": 0}, strategy: "error ratio",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, "ok")
			}))
			defer upstream.Close()
			proxy := toxitest.Start(t).Proxy(t, "psp", strings.TrimPrefix(upstream.URL, "http://"))

			reg := prometheus.NewRegistry()
			var logs logtest.Buffer
			set, err := breaker.NewSet(breaker.Config{
				Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
				Metrics: reg,
			}, map[string]breaker.Rules{"psp": faultRules})
			if err != nil {
				t.Fatal(err)
			}
			defer set.Close()
			transport := &http.Transport{}
			defer transport.CloseIdleConnections()
			client := &http.Client{Transport: set.RoundTripper("psp", transport), Timeout: 5 * time.Second}

			load := startLoad(ctx, client, "http://"+proxy.Listen+"/charges")
			defer load.stop()
			poll.Until(ctx, t, "ten good answers", func() bool { return load.ok.Load() >= 10 })
			if got := set.State("psp"); got != breaker.Closed {
				t.Fatalf("state under healthy load = %v, want closed", got)
			}

			faultAt := time.Now()
			if _, err := proxy.AddToxic("fault", tt.toxic, tt.stream, 1, tt.attrs); err != nil {
				t.Fatalf("add toxic: %v", err)
			}
			poll.Until(ctx, t, "the breaker open", func() bool { return set.State("psp") == breaker.Open })
			openedAt := time.Now()
			tripped := openedAt.Sub(faultAt)
			atTrip := load.snapshot()

			poll.Until(ctx, t, "calls failed fast", func() bool { return load.fast.Load() > atTrip.fast })
			healedAt := time.Now()
			if err := proxy.RemoveToxic("fault"); err != nil {
				t.Fatalf("remove toxic: %v", err)
			}
			poll.Until(ctx, t, "the breaker closed", func() bool { return set.State("psp") == breaker.Closed })
			closedAt := time.Now()
			recovered := closedAt.Sub(healedAt)
			closed := load.snapshot()
			poll.Until(ctx, t, "good answers again", func() bool { return load.ok.Load() > closed.ok })
			load.stop()

			t.Logf("%s breaker: tripped %v after the %s toxic was added (%d calls had reached the upstream, %d failed); "+
				"closed again %v after the toxic was removed (%v after it opened; open period %v, then one probe); %d calls failed fast",
				tt.strategy, tripped.Round(time.Millisecond), tt.toxic, atTrip.sent(), atTrip.failed,
				recovered.Round(time.Millisecond), closedAt.Sub(openedAt).Round(time.Millisecond),
				time.Duration(faultRules.OpenFor), closed.fast)

			for _, want := range []string{
				`msg="circuit breaker open" upstream=psp from=closed to=open strategy="` + tt.strategy + `"`,
				`msg="circuit breaker half-open" upstream=psp from=open to=half-open`,
				`msg="circuit breaker closed" upstream=psp from=half-open to=closed`,
			} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q; log:\n%s", want, logs.String())
				}
			}
			for _, to := range []string{"open", "half-open", "closed"} {
				if got := value(t, reg, "breaker_transitions_total", map[string]string{"upstream": "psp", "to": to}); got < 1 {
					t.Errorf("breaker_transitions_total{to=%q} = %v, want at least 1", to, got)
				}
			}
			if got := value(t, reg, "breaker_rejected_total", map[string]string{"upstream": "psp"}); got != float64(load.fast.Load()) {
				t.Errorf("breaker_rejected_total = %v, want the %d calls failed fast", got, load.fast.Load())
			}
		})
	}
}

// load sends GET requests at requestRate, each in its own goroutine (an
// open-loop load: a slow upstream does not slow the sending), and counts
// the outcomes. It stops on stop or when its context ends.
type load struct {
	ok, failed, fast atomic.Int64 // answered, failed at the upstream, failed fast by the breaker

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// counts is a snapshot of a load's counters.
type counts struct{ ok, failed, fast int64 }

// sent returns the calls that reached the upstream.
func (c counts) sent() int64 { return c.ok + c.failed }

func startLoad(ctx context.Context, client *http.Client, url string) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel}
	l.wg.Go(func() {
		tick := time.NewTicker(requestRate)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.wg.Go(func() { l.send(ctx, client, url) })
		}
	})
	return l
}

func (l *load) send(ctx context.Context, client *http.Client, url string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		panic(err)
	}
	resp, err := client.Do(req)
	switch {
	case errors.Is(err, breaker.ErrOpen):
		l.fast.Add(1)
	case ctx.Err() != nil: // stopped: not an outcome
	case err != nil:
		l.failed.Add(1)
	default:
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		l.ok.Add(1)
	}
}

func (l *load) snapshot() counts {
	return counts{ok: l.ok.Load(), failed: l.failed.Load(), fast: l.fast.Load()}
}

// stop stops sending and waits for the requests in flight.
func (l *load) stop() {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
	})
}
