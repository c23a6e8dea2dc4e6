package outbox_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/outbox"
)

// BenchmarkRelayDrain measures how fast one relay with the default options
// drains a backlog of deep keys, 20 keys of 50 messages each: the backlog a
// participant's outbox builds when its relay falls behind. It reports the
// rounds one drain takes and the messages relayed per second; a round
// costs one query and one mark in the database whatever it carries.
func BenchmarkRelayDrain(b *testing.B) {
	const keys, perKey = 20, 50
	for dialect, newDB := range backends(b) {
		b.Run(dialect, func(b *testing.B) {
			ctx := b.Context()
			db, addr := newDB(b), startBroker(ctx, b, topic)
			relay, _ := newRelay(b, db, newWriter(b, addr), outbox.RelayOptions{})
			rounds, relayed := 0, 0
			var relaying time.Duration
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				msgs := keyed(topic, keyNames(keys), perKey)
				for j := range msgs {
					msgs[j].ID = fmt.Sprintf("%d:%s", i, msgs[j].ID)
				}
				add(ctx, b, db, msgs...)
				b.StartTimer()
				start := time.Now()
				for {
					n, err := relay.RelayOnce(ctx)
					if err != nil {
						b.Fatalf("RelayOnce: %v", err)
					}
					if n == 0 {
						break
					}
					rounds++
					relayed += n
				}
				relaying += time.Since(start)
			}
			if relayed != b.N*keys*perKey {
				b.Fatalf("relayed %d messages, want %d", relayed, b.N*keys*perKey)
			}
			b.ReportMetric(float64(rounds)/float64(b.N), "rounds/op")
			b.ReportMetric(float64(relayed)/relaying.Seconds(), "msgs/s")
		})
	}
}
