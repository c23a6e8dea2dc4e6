package main

import (
	"log/slog"
	"math/rand/v2"
	"os"

	"github.com/segmentio/kafka-go"
)

// crashAfterHandle returns the consumer's AfterHandle hook for
// INVENTORY_CHAOS_CRASH_AFTER_HANDLE: with probability p it exits the process
// at once (code 3), after a message was handled and before it is committed,
// so that the message is delivered again: the crash the chaos harness
// (deploy/local/cmd/chaos) injects to make duplicate deliveries happen. It
// returns nil, no hook, when p is 0.
func crashAfterHandle(p float64, log *slog.Logger) func(kafka.Message) {
	if p <= 0 {
		return nil
	}
	return func(msg kafka.Message) {
		if rand.Float64() >= p {
			return
		}
		log.Warn("chaos: crashing after handle, before commit", slog.String("topic", msg.Topic),
			slog.Int("partition", msg.Partition), slog.Int64("offset", msg.Offset))
		os.Exit(3)
	}
}
