package saga

import (
	"errors"
	"fmt"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of an Orchestrator. The label values are bounded: definition and
// step names, statuses, reply results.
type metrics struct {
	started       *prometheus.CounterVec   // saga_started_total{definition}
	inFlight      *prometheus.GaugeVec     // saga_instances{status}
	replies       *prometheus.CounterVec   // saga_replies_total{result}
	retries       *prometheus.CounterVec   // saga_compensation_retries_total{definition, step}
	timeouts      *prometheus.CounterVec   // saga_step_timeouts_total{definition, step}
	finished      *prometheus.CounterVec   // saga_finished_total{definition, status, reason}
	duration      *prometheus.HistogramVec // saga_duration_seconds{definition, status}
	steps         *prometheus.HistogramVec // saga_step_duration_seconds{definition, step, operation, outcome}
	compensations *prometheus.CounterVec   // saga_compensations_total{definition, step}
}

// newMetrics creates the metrics and registers them with reg, unless it is
// nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_started_total",
			Help: "Sagas started (counted when Start returns; a caller's transaction that then rolls back is counted too).",
		}, []string{"definition"}),
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
			Help: "Sagas that reached a final status (COMPLETED, FAILED), by the reason of a failure: the step that failed and how, refused or timed out (\"\" for COMPLETED).",
		}, []string{"definition", "status", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "saga_duration_seconds",
			Help: "Time from Start to the final status.",
			// 5ms to about 5 minutes: checkout completes in milliseconds,
			// a saga stuck compensating takes minutes.
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 13),
		}, []string{"definition", "status"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "saga_step_duration_seconds",
			Help: "Time from a step's command sent (its last send, for a compensation re-sent) to its outcome: a reply (succeeded, failed) or the deadline (timed_out).",
			// 1ms to about 2 minutes.
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 14),
		}, []string{"definition", "step", "operation", "outcome"}),
		compensations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "saga_compensations_total",
			Help: "Compensations started (their first send), by the step they undo.",
		}, []string{"definition", "step"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.started, m.inFlight, m.replies, m.retries, m.timeouts, m.finished, m.duration, m.steps, m.compensations} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return m, nil
}

// initialize creates the counters' series of every definition and step at
// 0, so that a rate or an alert on them has data before the first event
// (Prometheus's advice: avoid missing metrics).
func (m *metrics) initialize(defs map[string]*Definition) {
	for _, def := range defs {
		m.started.WithLabelValues(def.Name)
		m.finished.WithLabelValues(def.Name, string(StatusCompleted), "")
		for _, step := range def.Steps {
			m.timeouts.WithLabelValues(def.Name, step.Name)
			if step.Compensate != nil {
				m.compensations.WithLabelValues(def.Name, step.Name)
				m.retries.WithLabelValues(def.Name, step.Name)
			}
		}
	}
}

// failureReason is the bounded label value of a saga failed for reason, which
// compensateFrom wrote as "<step>: <the participant's reason>" or
// "<step>: timed out": the step and "refused" or "timed out". The
// participant's own words are in the log and the trace, not in a label.
func failureReason(reason string) string {
	step, why, ok := strings.Cut(reason, ": ")
	if !ok {
		return "unknown"
	}
	if why == reasonTimedOut {
		return step + ": " + reasonTimedOut
	}
	return step + ": refused"
}
