package saga

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of an Orchestrator. The label values are bounded: definition and
// step names, statuses, reply results.
type metrics struct {
	inFlight *prometheus.GaugeVec     // saga_instances{status}
	replies  *prometheus.CounterVec   // saga_replies_total{result}
	retries  *prometheus.CounterVec   // saga_compensation_retries_total{definition, step}
	timeouts *prometheus.CounterVec   // saga_step_timeouts_total{definition, step}
	finished *prometheus.CounterVec   // saga_finished_total{definition, status}
	duration *prometheus.HistogramVec // saga_duration_seconds{definition, status}
}

// newMetrics creates the metrics and registers them with reg, unless it is
// nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "saga_instances",
			Help: "Sagas in flight in the database, by status (RUNNING, COMPENSATING), as of the last round of Run. Every replica reports the whole database: aggregate with max, not sum. A COMPENSATING count that stays up means stuck compensations.",
		}, []string{"status"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_replies_total",
			Help: "Participant replies handled, by result: applied, refused (a compensation answered OK=false, retried later), stale (duplicate or late, ignored), unknown (no such saga, ignored).",
		}, []string{"result"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_compensation_retries_total",
			Help: "Compensations re-sent because they were not acknowledged in time.",
		}, []string{"definition", "step"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_step_timeouts_total",
			Help: "Actions that got no reply before their deadline and were compensated.",
		}, []string{"definition", "step"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_finished_total",
			Help: "Sagas that reached a final status (COMPLETED, FAILED).",
		}, []string{"definition", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "saga_duration_seconds",
			Help: "Time from Start to the final status.",
			// 5ms to about 5 minutes: checkout completes in milliseconds,
			// a saga stuck compensating takes minutes.
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 13),
		}, []string{"definition", "status"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.inFlight, m.replies, m.retries, m.timeouts, m.finished, m.duration} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}
