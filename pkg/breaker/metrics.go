package breaker

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the breaker_* families. A nil *metrics records nothing.
type metrics struct {
	stateGauge  *prometheus.GaugeVec
	transitions *prometheus.CounterVec
	rejections  *prometheus.CounterVec
}

// newMetrics registers the families on reg, or finds them there if another
// Set registered them first; a nil reg gives a nil *metrics.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		stateGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "breaker_state",
			Help: "State of the circuit breaker of an upstream: 0 closed, 1 half-open, 2 open.",
		}, []string{"upstream"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "breaker_transitions_total",
			Help: "Changes of state of the circuit breaker of an upstream, by the state changed to.",
		}, []string{"upstream", "to"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "breaker_rejected_total",
			Help: "Calls to an upstream failed fast by its circuit breaker.",
		}, []string{"upstream"}),
	}
	var err error
	if m.stateGauge, err = register(reg, m.stateGauge); err != nil {
		return nil, err
	}
	if m.transitions, err = register(reg, m.transitions); err != nil {
		return nil, err
	}
	if m.rejections, err = register(reg, m.rejections); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector of the same
// description already registered there.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) state(upstream string, s State) {
	if m != nil {
		m.stateGauge.WithLabelValues(upstream).Set(float64(s))
	}
}

func (m *metrics) transition(upstream string, to State) {
	if m != nil {
		m.transitions.WithLabelValues(upstream, to.String()).Inc()
	}
}

func (m *metrics) rejected(upstream string) {
	if m != nil {
		m.rejections.WithLabelValues(upstream).Inc()
	}
}
