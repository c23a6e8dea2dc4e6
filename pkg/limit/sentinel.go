package limit

// This file is the one place that touches sentinel-golang's package-level
// state for limiting (pkg/breaker has its own, for circuit breakers).

import (
	"errors"
	"math"
	"sync"
	"time"

	"github.com/alibaba/sentinel-golang/api"
	"github.com/alibaba/sentinel-golang/core/base"
	"github.com/alibaba/sentinel-golang/core/stat"
	"github.com/alibaba/sentinel-golang/core/system"
	"github.com/alibaba/sentinel-golang/core/system_metric"
	"github.com/shirou/gopsutil/v3/cpu"
)

// sentinelResource is the resource every request enters; system rules
// apply to all Inbound resources alike.
const sentinelResource = "microshop-inbound"

// sentinelCPUThreshold is the CPU usage, a fraction of the machine's, above
// which the system rule's BBR check starts limiting.
const sentinelCPUThreshold = 0.8

// sentinelInUse allows one sentinel candidate per process: its rules and
// statistics are global.
var sentinelInUse sync.Mutex

// sentinelSystem is sentinel-golang's system (adaptive) rule with the BBR
// strategy on CPU usage: while the CPU is above the threshold, admit no
// more concurrent Inbound entries than the most completions per second ×
// the least response time.
//
// sentinel-golang v1.0.4 compares its own CPU reading, a percentage of
// one core (0–100 × cores), against the rule's threshold, which it requires
// to be at most 1, so that the check runs at any CPU above 1 %. We do not
// start its collector: the candidate reads the machine's CPU usage as a
// fraction itself (at most every 100 ms, on the request path) and stores
// it where sentinel reads it.
type sentinelSystem struct {
	mu      sync.Mutex
	sampled time.Time
}

func newSentinel() (*sentinelSystem, error) {
	if !sentinelInUse.TryLock() {
		return nil, errors.New("sentinel adaptive limiter: one per process (sentinel's rules are global)")
	}
	_, err := system.LoadRules([]*system.Rule{{
		MetricType: system.CpuUsage, TriggerCount: sentinelCPUThreshold, Strategy: system.BBR,
	}})
	if err != nil {
		sentinelInUse.Unlock()
		return nil, err
	}
	s := &sentinelSystem{}
	s.sample(time.Now())
	return s, nil
}

// sample stores the machine's CPU usage since the last sample, as a
// fraction, if 100 ms have passed.
func (s *sentinelSystem) sample(now time.Time) {
	if !s.mu.TryLock() {
		return // another request is sampling
	}
	defer s.mu.Unlock()
	if now.Sub(s.sampled) < 100*time.Millisecond {
		return
	}
	s.sampled = now
	if pct, err := cpu.Percent(0, false); err == nil && len(pct) == 1 {
		system_metric.SetSystemCpuUsage(pct[0] / 100)
	}
}

func (s *sentinelSystem) Acquire() (func(bool), bool) {
	s.sample(time.Now())
	e, blocked := api.Entry(sentinelResource, api.WithTrafficType(base.Inbound))
	if blocked != nil {
		return nil, false
	}
	return func(failed bool) {
		if failed {
			api.TraceError(e, errFailed)
		}
		e.Exit()
	}, true
}

var errFailed = errors.New("request failed")

// Limit is the BBR bound while the CPU is above the threshold.
func (s *sentinelSystem) Limit() int {
	if system_metric.CurrentCpuUsage() <= sentinelCPUThreshold {
		return 0
	}
	n := stat.InboundNode()
	l := n.GetMaxAvg(base.MetricEventComplete) * n.MinRT() / 1000
	return int(min(math.Ceil(l), math.MaxInt32))
}

func (s *sentinelSystem) Close() {
	_, _ = system.LoadRules(nil)
	sentinelInUse.Unlock()
}
