package breaker

import (
	"encoding/json"
	"testing"

	"github.com/alibaba/sentinel-golang/core/circuitbreaker"
)

// FuzzRules decodes rules documents as pkg/liverules does and checks that
// whatever Validate accepts, sentinel accepts too: sentinel drops a rule it
// finds invalid with no more than a log line, which would leave an
// upstream without the breaker its document asks for.
func FuzzRules(f *testing.F) {
	f.Add(`{"psp": {"window": "10s", "minRequests": 20, "errorRatio": 0.5, "slowCall": "500ms", "slowRatio": 0.8, "openFor": "5s", "probes": 3}}`)
	f.Add(`{"order": {"errorRatio": 1}, "inventory": {}}`)
	f.Add(`{"order": {"window": "1.5ms", "errorRatio": 0.1}}`)
	f.Add(`{"order": {"slowRatio": 1e-300, "slowCall": "1ms", "openFor": "59m59.999999999s"}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var rules map[string]Rules
		if err := json.Unmarshal([]byte(doc), &rules); err != nil {
			return
		}
		if err := Validate(rules); err != nil {
			return
		}
		for upstream, r := range rules {
			for _, sr := range r.withDefaults().sentinelRules(upstream + "#1") {
				if err := circuitbreaker.IsValidRule(sr); err != nil {
					t.Errorf("upstream %s: rules %+v pass Validate, sentinel refuses %v: %v", upstream, r, sr, err)
				}
				if sr.StatIntervalMs%sr.StatSlidingWindowBucketCount != 0 {
					t.Errorf("upstream %s: window %dms not divisible in %d buckets", upstream, sr.StatIntervalMs, sr.StatSlidingWindowBucketCount)
				}
			}
		}
	})
}
