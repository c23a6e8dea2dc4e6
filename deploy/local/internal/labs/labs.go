// Package labs holds the workshop's labs (labs/ at the repository's root)
// as code: for each, a check that reads the running shop — Jaeger's query
// API, Prometheus, Consul, the databases, the services' own endpoints — and
// says in plain words whether the learner has done and seen what the lab is
// about, and if not, what is missing. A check never reads a file the learner
// could simply create: its evidence is the state the learner's actions left
// in the stack.
//
// Each lab is one file (lab01_trace.go, …) and one line of All. The command
// deploy/local/cmd/lab runs a check (make lab-N-check); the launcher's
// TestLabs proves each check in both directions on a real stack: it fails
// before the learner's action and passes after it.
package labs

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/microshop/microshop/deploy/local/internal/invariants"
)

// Stack says where the running shop's parts answer ("" when a part is not running).
type Stack struct {
	Gateway, PSP, Consul, Jaeger, Prometheus, Probe string            // base URLs
	Broker                                          string            // Kafka address
	Databases                                       map[string]string // service name ("order", "inventory", "payment") → PostgreSQL URL
}

// Verdict is what a check saw: passed when Missing is empty.
type Verdict struct {
	Seen    []string // plain words, one finding each
	Missing []string // plain words: what is not there yet and what to do
}

// Passed reports whether the check saw everything it looks for.
func (v Verdict) Passed() bool { return len(v.Missing) == 0 }

// String is the verdict as the learner reads it: ✓ lines, then ✗ lines.
func (v Verdict) String() string {
	var b strings.Builder
	for _, s := range v.Seen {
		fmt.Fprintf(&b, "  ✓ %s\n", s)
	}
	for _, m := range v.Missing {
		fmt.Fprintf(&b, "  ✗ %s\n", m)
	}
	return b.String()
}

func (v *Verdict) see(format string, args ...any) {
	v.Seen = append(v.Seen, fmt.Sprintf(format, args...))
}
func (v *Verdict) miss(format string, args ...any) {
	v.Missing = append(v.Missing, fmt.Sprintf(format, args...))
}

// A Lab is one workshop lab.
type Lab struct {
	Number int
	Dir    string // its folder under labs/, e.g. "01-one-trace"
	Title  string
	Check  func(ctx context.Context, s Stack) (Verdict, error) // error: the stack could not be read at all
}

// All returns every lab in order.
func All() []Lab {
	return []Lab{
		{Number: 1, Dir: "01-one-trace", Title: "One checkout, one trace", Check: checkTrace},
		{Number: 2, Dir: "02-breaker", Title: "The breaker opens, the saga compensates, the breaker closes", Check: checkBreaker},
		{Number: 3, Dir: "03-overload", Title: "Overload, with and without a limiter", Check: checkOverload},
		{Number: 4, Dir: "04-kill-order", Title: "Kill order in the middle of checkouts", Check: checkKillOrder},
		{Number: 5, Dir: "05-duplicates", Title: "Duplicate deliveries meet the barrier", Check: checkDuplicates},
		{Number: 6, Dir: "06-ebpf", Title: "The eBPF probe's view and the SDK's", Check: checkEBPF},
		{Number: 7, Dir: "07-live-rules", Title: "A rule changed live", Check: checkLiveRules},
		{Number: 8, Dir: "08-burn-rate", Title: "An SLO burn-rate alert fires and clears", Check: checkBurnRate},
		{Number: 9, Dir: "09-partition", Title: "A service cut off the broker, and the saga settling", Check: checkPartition},
		{Number: 10, Dir: "10-new-service", Title: "A new service", Check: checkNewService},
	}
}

// Find returns the lab numbered n.
func Find(n int) (Lab, bool) {
	for _, l := range All() {
		if l.Number == n {
			return l, true
		}
	}
	return Lab{}, false
}

// requestTimeout bounds every request a check makes: a part that hangs is
// a part that does not answer.
const requestTimeout = 10 * time.Second

// getJSON decodes the JSON answer of GET url into out; any status but 200
// is an error.
func getJSON(ctx context.Context, url string, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, body)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// metrics are the metric families of one /metrics page, by name.
type metrics map[string]*dto.MetricFamily

// scrapeTimeout bounds a read of /metrics: the probe's took 9 s on a
// machine crowded with other stacks' processes.
const scrapeTimeout = 30 * time.Second

// scrape reads the metrics a process serves at base/metrics.
func scrape(ctx context.Context, base string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, scrapeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", base, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// sum adds the samples of the series name whose labels include every one
// of labels (each key="value", as the exposition format writes them).
// name is a family, or a histogram's family with the suffix of one of its
// series: _count, _sum, or _bucket with an le label among labels.
func (m metrics) sum(name string, labels ...string) float64 {
	want := map[string]string{}
	for _, l := range labels {
		k, quoted, _ := strings.Cut(l, "=")
		v, err := strconv.Unquote(quoted)
		if err != nil {
			v = quoted
		}
		want[k] = v
	}
	family, suffix := name, ""
	if _, ok := m[name]; !ok {
		for _, s := range []string{"_count", "_sum", "_bucket"} {
			if base, found := strings.CutSuffix(name, s); found && m[base].GetType() == dto.MetricType_HISTOGRAM {
				family, suffix = base, s
			}
		}
	}
	le, byBucket := want["le"]
	delete(want, "le")
	total := 0.0
	for _, metric := range m[family].GetMetric() {
		have := labelMap(metric)
		if !matches(have, want) {
			continue
		}
		switch h := metric.GetHistogram(); suffix {
		case "_count":
			total += float64(h.GetSampleCount())
		case "_sum":
			total += h.GetSampleSum()
		case "_bucket":
			for _, b := range h.GetBucket() {
				if byBucket && strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64) == le {
					total += float64(b.GetCumulativeCount())
				}
			}
		default:
			total += metric.GetCounter().GetValue() + metric.GetGauge().GetValue() + metric.GetUntyped().GetValue()
		}
	}
	return total
}

// matches reports whether have holds every label of want.
func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// labelMap is a series' labels by name.
func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// serviceURL asks Consul where a passing instance of service serves, as
// the gateway finds order and inventory: "http://host:port".
func serviceURL(ctx context.Context, consul, service string) (string, error) {
	client, err := consulClient(consul)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	entries, _, err := client.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return "", fmt.Errorf("ask Consul for %s: %w", service, err)
	}
	if len(entries) == 0 {
		return "", fmt.Errorf("consul has no passing instance of %s", service)
	}
	e := entries[0]
	host := e.Service.Address
	if host == "" {
		host = e.Node.Address
	}
	return "http://" + host + ":" + strconv.Itoa(e.Service.Port), nil
}

// Databases returns the URLs of the three services' databases in the
// PostgreSQL cluster at hostPort, as make run-full creates them (orderdb,
// inventorydb, paymentdb, the superuser postgres, trust); nil for "".
func Databases(hostPort string) map[string]string {
	if hostPort == "" {
		return nil
	}
	urls := map[string]string{}
	for _, name := range []string{"order", "inventory", "payment"} {
		urls[name] = "postgres://postgres@" + hostPort + "/" + name + "db?sslmode=disable"
	}
	return urls
}

// defaultHTTPClient is the client of Consul's API: the default one, whose
// connections are reused — a check polled in a loop must not open a new
// pool each time (Consul refuses too many connections from one address).
func defaultHTTPClient() *http.Client { return http.DefaultClient }

// openDatabases opens the three services' databases of s.
func openDatabases(ctx context.Context, s Stack) (invariants.Databases, func(), error) {
	for _, name := range []string{"order", "inventory", "payment"} {
		if s.Databases[name] == "" {
			return invariants.Databases{}, nil, fmt.Errorf("no address for the %s database: is make run-full running?", name)
		}
	}
	return invariants.OpenDatabases(ctx, s.Databases)
}
