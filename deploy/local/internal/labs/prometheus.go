package labs

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// lookback is how far back the checks read Prometheus for what the
// learner did: a workshop session's length (the native stack keeps a day).
const lookback = 3 * time.Hour

// step is the resolution of the checks' range queries: the scrape and
// rule evaluation interval of both stacks' Prometheus.
const step = 5 * time.Second

// prometheus asks a Prometheus server's HTTP API.
type prometheus struct {
	base   string // e.g. http://127.0.0.1:9090
	client *http.Client
}

func newPrometheus(base string) *prometheus {
	return &prometheus{base: base, client: &http.Client{Timeout: 30 * time.Second}}
}

// sample is one series of an instant query's answer.
type sample struct {
	labels map[string]string
	value  float64
}

// point is a value of a series at a time.
type point struct {
	at    time.Time
	value float64
}

// series is one series of a range query's answer.
type series struct {
	labels map[string]string
	points []point
}

// get asks path with query and decodes the answer's data into data.
func (p *prometheus) get(ctx context.Context, path string, query url.Values, data any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path+"?"+query.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("prometheus: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("prometheus %s: %s: %w", path, resp.Status, err)
	}
	if body.Status != "success" {
		return fmt.Errorf("prometheus %s %s: %s", path, query.Get("query"), body.Error)
	}
	return json.Unmarshal(body.Data, data)
}

// query evaluates expr now; its result must be a vector.
func (p *prometheus) query(ctx context.Context, expr string) ([]sample, error) {
	var data struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := p.get(ctx, "/api/v1/query", url.Values{"query": {expr}}, &data); err != nil {
		return nil, err
	}
	if data.ResultType != "vector" {
		return nil, fmt.Errorf("prometheus: %s is a %s, not a vector", expr, data.ResultType)
	}
	var out []sample
	for _, r := range data.Result {
		_, v, err := parsePair(r.Value)
		if err != nil {
			return nil, fmt.Errorf("prometheus: %s: %w", expr, err)
		}
		out = append(out, sample{labels: r.Metric, value: v})
	}
	return out, nil
}

// scalar evaluates expr now and returns its one value; ok is false when
// the answer is empty.
func (p *prometheus) scalar(ctx context.Context, expr string) (v float64, ok bool, err error) {
	samples, err := p.query(ctx, expr)
	switch {
	case err != nil:
		return 0, false, err
	case len(samples) == 0:
		return 0, false, nil
	case len(samples) > 1:
		return 0, false, fmt.Errorf("prometheus: %s has %d series, want one", expr, len(samples))
	}
	return samples[0].value, true, nil
}

// queryRange evaluates expr every step from start to end.
func (p *prometheus) queryRange(ctx context.Context, expr string, start, end time.Time) ([]series, error) {
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		} `json:"result"`
	}
	q := url.Values{"query": {expr}, "start": {unix(start)}, "end": {unix(end)}, "step": {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)}}
	if err := p.get(ctx, "/api/v1/query_range", q, &data); err != nil {
		return nil, err
	}
	var out []series
	for _, r := range data.Result {
		s := series{labels: r.Metric}
		for _, pair := range r.Values {
			at, v, err := parsePair(pair)
			if err != nil {
				return nil, fmt.Errorf("prometheus: %s: %w", expr, err)
			}
			s.points = append(s.points, point{at: at, value: v})
		}
		out = append(out, s)
	}
	return out, nil
}

// rangeByTime evaluates expr, which must have at most one series, every
// step over the lookback, and returns its values by time.
func (p *prometheus) rangeByTime(ctx context.Context, expr string, start, end time.Time) (map[time.Time]float64, error) {
	all, err := p.queryRange(ctx, expr, start, end)
	if err != nil {
		return nil, err
	}
	if len(all) > 1 {
		return nil, fmt.Errorf("prometheus: %s has %d series, want at most one", expr, len(all))
	}
	out := map[time.Time]float64{}
	for _, s := range all {
		for _, pt := range s.points {
			out[pt.at] = pt.value
		}
	}
	return out, nil
}

// target is one scrape target of Prometheus.
type target struct {
	job, url, health string
}

// targets returns Prometheus's active scrape targets.
func (p *prometheus) targets(ctx context.Context) ([]target, error) {
	var data struct {
		ActiveTargets []struct {
			Labels    map[string]string `json:"labels"`
			ScrapeURL string            `json:"scrapeUrl"`
			Health    string            `json:"health"`
		} `json:"activeTargets"`
	}
	if err := p.get(ctx, "/api/v1/targets", url.Values{"state": {"active"}}, &data); err != nil {
		return nil, err
	}
	var out []target
	for _, t := range data.ActiveTargets {
		out = append(out, target{job: t.Labels["job"], url: t.ScrapeURL, health: t.Health})
	}
	return out, nil
}

// hasRule reports whether Prometheus has loaded a rule of that name.
func (p *prometheus) hasRule(ctx context.Context, name string) (bool, error) {
	var data struct {
		Groups []struct {
			Rules []struct {
				Name string `json:"name"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := p.get(ctx, "/api/v1/rules", url.Values{}, &data); err != nil {
		return false, err
	}
	for _, g := range data.Groups {
		for _, r := range g.Rules {
			if r.Name == name {
				return true, nil
			}
		}
	}
	return false, nil
}

// parsePair reads the [unix seconds, "value"] pair of the API.
func parsePair(pair [2]any) (time.Time, float64, error) {
	secs, ok := pair[0].(float64)
	if !ok {
		return time.Time{}, 0, fmt.Errorf("timestamp %v is not a number", pair[0])
	}
	s, ok := pair[1].(string)
	if !ok {
		return time.Time{}, 0, fmt.Errorf("value %v is not a string", pair[1])
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, 0, err
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)).UTC(), v, nil
}

func unix(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// inWords says a duration of a verdict: "3 hours", "10 s".
func inWords(d time.Duration) string {
	if d >= time.Hour && d%time.Hour == 0 {
		return fmt.Sprintf("%d hours", d/time.Hour)
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

// clock formats a time of a verdict.
func clock(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }
