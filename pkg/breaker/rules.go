package breaker

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
)

// Defaults of a Rules' zero fields.
const (
	DefaultWindow      = 10 * time.Second
	DefaultMinRequests = 10
	DefaultOpenFor     = 5 * time.Second
	DefaultProbes      = 1
)

// Limits of the durations in Rules: sentinel counts milliseconds in 32 bits,
// and a breaker that stays open for hours is a misconfiguration.
const (
	minDuration = time.Millisecond
	maxDuration = time.Hour
)

// Rules are the thresholds of one upstream's breaker. In JSON (the document
// kept in Consul KV, one object per upstream):
//
//	{"order": {"window": "10s", "minRequests": 20, "errorRatio": 0.5,
//	           "slowCall": "500ms", "slowRatio": 0.8, "openFor": "5s", "probes": 3}}
//
// A zero field takes the default named on it; a zero ratio turns that
// strategy off, and with both off the upstream has no breaker.
type Rules struct {
	// Window is the sliding window the ratios are computed over, in ten
	// buckets; zero means DefaultWindow.
	Window Duration `json:"window,omitzero"`
	// MinRequests is how many calls the window must hold before a ratio can
	// trip the breaker; zero means DefaultMinRequests.
	MinRequests uint64 `json:"minRequests,omitzero"`
	// ErrorRatio trips the breaker when this share of the window's calls
	// failed, in (0, 1]; 0 turns the error-ratio strategy off.
	ErrorRatio float64 `json:"errorRatio,omitzero"`
	// SlowCall is the duration above which a call counts as slow; required
	// when SlowRatio is set.
	SlowCall Duration `json:"slowCall,omitzero"`
	// SlowRatio trips the breaker when this share of the window's calls was
	// slow, in (0, 1]; 0 turns the slow-call strategy off.
	SlowRatio float64 `json:"slowRatio,omitzero"`
	// OpenFor is how long the breaker stays open before it lets trial calls
	// through; zero means DefaultOpenFor.
	OpenFor Duration `json:"openFor,omitzero"`
	// Probes is how many trial calls a half-open breaker lets through at a
	// time, all of which must succeed for it to close; zero means
	// DefaultProbes.
	Probes uint64 `json:"probes,omitzero"`
}

// Duration is a time.Duration written in JSON as a Go duration string
// ("500ms", "10s"), the way an operator writes it.
type Duration time.Duration

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string such as "1.5s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"500ms\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// String formats d as time.Duration does: "1.5s".
func (d Duration) String() string { return time.Duration(d).String() }

// LogValue logs r as a group of its fields, durations written as such.
func (r Rules) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("window", r.Window.String()),
		slog.Uint64("minRequests", r.MinRequests),
		slog.Float64("errorRatio", r.ErrorRatio),
		slog.String("slowCall", r.SlowCall.String()),
		slog.Float64("slowRatio", r.SlowRatio),
		slog.String("openFor", r.OpenFor.String()),
		slog.Uint64("probes", r.Probes),
	)
}

// withDefaults returns r with its zero fields set to their defaults.
func (r Rules) withDefaults() Rules {
	r.Window = cmp.Or(r.Window, Duration(DefaultWindow))
	r.MinRequests = cmp.Or(r.MinRequests, DefaultMinRequests)
	r.OpenFor = cmp.Or(r.OpenFor, Duration(DefaultOpenFor))
	r.Probes = cmp.Or(r.Probes, DefaultProbes)
	return r
}

// enabled reports whether r asks for any breaker at all.
func (r Rules) enabled() bool { return r.ErrorRatio > 0 || r.SlowRatio > 0 }

// validate reports every problem of r.
func (r Rules) validate() error {
	var errs []error
	ratio := func(name string, v float64) {
		if v < 0 || v > 1 {
			errs = append(errs, fmt.Errorf("%s %v is not in [0, 1]", name, v))
		}
	}
	ratio("errorRatio", r.ErrorRatio)
	ratio("slowRatio", r.SlowRatio)
	duration := func(name string, d Duration, zeroOK bool) {
		if d == 0 && zeroOK {
			return
		}
		if v := time.Duration(d); v < minDuration || v > maxDuration {
			errs = append(errs, fmt.Errorf("%s %v is not in [%v, %v]", name, v, minDuration, maxDuration))
		}
	}
	duration("window", r.Window, true)
	duration("openFor", r.OpenFor, true)
	duration("slowCall", r.SlowCall, r.SlowRatio == 0)
	if r.Probes > 1000 {
		errs = append(errs, fmt.Errorf("probes %d is above 1000", r.Probes))
	}
	return errors.Join(errs...)
}

// Validate reports every problem of a rules document, naming the upstream
// of each. It is the check to give pkg/liverules before a document replaces
// the rules in force.
func Validate(rules map[string]Rules) error {
	var errs []error
	for _, upstream := range slices.Sorted(maps.Keys(rules)) {
		if upstream == "" {
			errs = append(errs, errors.New("empty upstream name"))
			continue
		}
		if err := rules[upstream].validate(); err != nil {
			errs = append(errs, fmt.Errorf("upstream %s: %w", upstream, err))
		}
	}
	return errors.Join(errs...)
}

// sentinelRules translates r (with defaults) into sentinel's rules of the
// resource res: one per strategy turned on.
func (r Rules) sentinelRules(res string) []*circuitbreaker.Rule {
	window := uint32(time.Duration(r.Window).Milliseconds())
	buckets := uint32(10)
	if window%buckets != 0 {
		buckets = 1 // sentinel needs the window to divide evenly
	}
	base := circuitbreaker.Rule{
		Resource:                     res,
		RetryTimeoutMs:               uint32(time.Duration(r.OpenFor).Milliseconds()),
		MinRequestAmount:             r.MinRequests,
		StatIntervalMs:               window,
		StatSlidingWindowBucketCount: buckets,
		ProbeNum:                     r.Probes,
	}
	var rules []*circuitbreaker.Rule
	if r.ErrorRatio > 0 {
		rule := base
		rule.Strategy = circuitbreaker.ErrorRatio
		rule.Threshold = r.ErrorRatio
		rules = append(rules, &rule)
	}
	if r.SlowRatio > 0 {
		rule := base
		rule.Strategy = circuitbreaker.SlowRequestRatio
		rule.Threshold = r.SlowRatio
		rule.MaxAllowedRtMs = uint64(time.Duration(r.SlowCall).Milliseconds())
		rules = append(rules, &rule)
	}
	return rules
}
