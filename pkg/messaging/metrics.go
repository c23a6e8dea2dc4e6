package messaging

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a consumed message, the values of the outcome label of
// messaging_consumed_total.
const (
	outcomeOK           = "ok"            // handled at the first attempt
	outcomeRetried      = "retried"       // handled after failed attempts
	outcomeDeadLettered = "dead_lettered" // written to the dead-letter topic
	// outcomeInterrupted is not a label value: the consumer stopped before
	// the message was handled, and it is left to its next delivery. Only
	// its span says so.
	outcomeInterrupted = "interrupted"
)

// metrics are a consumer's Prometheus collectors.
type metrics struct {
	consumed     *prometheus.CounterVec   // topic, outcome
	duration     *prometheus.HistogramVec // topic
	deadLettered *prometheus.CounterVec   // topic
	lag          *prometheus.GaugeVec     // topic, partition
}

// newMetrics creates the consumer metrics and registers them with reg, if not
// nil. Consumers registering with the same reg share the collectors, so a
// process may run several of them.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	consumed, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "messaging_consumed_total",
		Help: "Messages consumed and committed, by topic and outcome: ok (first attempt), retried (after failed attempts), dead_lettered.",
	}, []string{"topic", "outcome"}))
	if err != nil {
		return nil, err
	}
	duration, err := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "messaging_handler_duration_seconds",
		Help:    "Duration of one call of a consumer's message handler, failed or not, by topic.",
		Buckets: prometheus.DefBuckets,
	}, []string{"topic"}))
	if err != nil {
		return nil, err
	}
	deadLettered, err := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "messaging_dead_lettered_total",
		Help: "Messages written to a dead-letter topic, by the topic they were consumed from.",
	}, []string{"topic"}))
	if err != nil {
		return nil, err
	}
	lag, err := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "messaging_consumer_lag_messages",
		Help: "Messages of a partition waiting behind the one this consumer handles, by topic and partition: the partition's high-water mark when that message was fetched, minus its offset, minus one. It keeps its value until the next message.",
	}, []string{"topic", "partition"}))
	if err != nil {
		return nil, err
	}
	return &metrics{consumed: consumed, duration: duration, deadLettered: deadLettered, lag: lag}, nil
}

// register registers c with reg, or returns the equal collector registered
// before. A nil reg registers nothing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}
