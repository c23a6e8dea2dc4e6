package limit

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of a rejection, the reason label of limiter_rejected_total.
const (
	reasonRoute    = "route"    // the route's bucket was empty: 429
	reasonUser     = "user"     // the user's bucket was empty: 429
	reasonAdaptive = "adaptive" // the process was at its limit: 503
)

// metrics are the limiter_* families. A Limiter without a registry still
// has them, unregistered.
type metrics struct {
	admissions *prometheus.CounterVec
	rejections *prometheus.CounterVec
	inflight   prometheus.Gauge
	limit      prometheus.Gauge
	algorithm  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		admissions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "limiter_admitted_total",
			Help: "Requests the limiter let through to their handler, by priority.",
		}, []string{"priority"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "limiter_rejected_total",
			Help: "Requests the limiter refused before their handler, by priority and reason (route, user: 429; adaptive: 503).",
		}, []string{"priority", "reason"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "limiter_inflight",
			Help: "Requests admitted by the adaptive limiter and not yet answered.",
		}),
		limit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "limiter_limit",
			Help: "The adaptive concurrency limit in force; 0 while the algorithm sets none.",
		}),
		algorithm: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "limiter_algorithm",
			Help: "The adaptive algorithm in force: 1 for its name (none: no adaptive limit).",
		}, []string{"algorithm"}),
	}
	for _, p := range priorities {
		if p == Critical {
			continue // never admitted or refused: it skips the limiter
		}
		m.admissions.WithLabelValues(p.String())
		for _, r := range []string{reasonRoute, reasonUser, reasonAdaptive} {
			m.rejections.WithLabelValues(p.String(), r)
		}
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.admissions, m.rejections, m.inflight, m.limit, m.algorithm} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

func (m *metrics) admitted(p Priority) { m.admissions.WithLabelValues(p.String()).Inc() }

func (m *metrics) rejected(p Priority, reason string) {
	m.rejections.WithLabelValues(p.String(), reason).Inc()
}

// inForce exports what a Rules document put in force: its algorithm, and
// the limit it starts from (the limit then follows each answer).
func (m *metrics) inForce(alg Algorithm, limit int) {
	m.algorithm.Reset()
	m.algorithm.WithLabelValues(string(alg)).Set(1)
	m.limit.Set(float64(limit))
}
