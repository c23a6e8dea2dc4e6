// Package faultinject holds the faults the chaos harness
// (deploy/local/cmd/chaos) injects into the services on purpose, so that
// the failures the saga must survive really happen during a run. Every
// fault is off unless its probability is set (each service's
// <SERVICE>_CHAOS_* variables); production leaves them unset, and then
// nothing of this package runs.
package faultinject

import (
	"log/slog"
	"math/rand/v2"

	"github.com/segmentio/kafka-go"
)

// CrashAfterHandle returns a messaging.ConsumerConfig.AfterHandle hook that,
// with probability p, logs and calls exit(3) after a message was handled
// and before it is committed, so that the message is delivered again: the
// duplicate delivery the participants' barrier must absorb. main passes
// os.Exit. It returns nil, no hook, when p <= 0.
func CrashAfterHandle(p float64, exit func(code int), log *slog.Logger) func(kafka.Message) {
	if p <= 0 {
		return nil
	}
	return func(msg kafka.Message) {
		if rand.Float64() >= p {
			return
		}
		log.Warn("chaos: crashing after handle, before commit", slog.String("topic", msg.Topic),
			slog.Int("partition", msg.Partition), slog.Int64("offset", msg.Offset))
		exit(3)
	}
}
