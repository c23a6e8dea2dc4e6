package outbox_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
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
				addBacklog(ctx, b, db, strconv.Itoa(i), keys, perKey)
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

// BenchmarkRelayRoundDeadEntries measures the database's part of a round
// on PostgreSQL when vacuum is behind: 15 keys with 69 pending messages
// each (the backlog chaos run 10 left in payment's outbox: 1,035 messages
// of 15 orders whose duplicate commands were each answered), and for each
// key 2,000 older messages already sent, beside 40,000 of other keys, whose
// index entries cannot be pruned, because a transaction that began before
// they were sent is still open (as the relays' own rounds are while they
// publish); the table's statistics are taken with nothing pending. The
// publisher acknowledges at once, so the time is the queries' and the
// marks'. It reports the rounds per drain, the last of which finds
// nothing, and the milliseconds a round takes.
func BenchmarkRelayRoundDeadEntries(b *testing.B) {
	const keys, pending, sentPerKey = 15, 69, 2000
	ctx := b.Context()
	db := openMigrated(b, pgtest.NewDatabase(b, pgtest.Start(b)))
	if err := db.Exec("ALTER TABLE outbox SET (autovacuum_enabled = false)").Error; err != nil {
		b.Fatal(err)
	}
	holder := db.Begin(&sql.TxOptions{Isolation: sql.LevelRepeatableRead})
	if err := holder.Exec("SELECT count(*) FROM outbox").Error; err != nil { // takes the snapshot
		b.Fatal(err)
	}
	defer holder.Rollback()
	relay, _ := newRelay(b, db, ackAll{}, outbox.RelayOptions{})
	// The hot keys' history, and that of 5,000 other orders of 8
	// messages each, as the rest of the run left it.
	history := keyed(topic, keyNames(keys), sentPerKey)
	others := make([]string, 5000)
	for i := range others {
		others[i] = fmt.Sprintf("other-%04d", i)
	}
	history = append(history, keyed(topic, others, 8)...)
	for i := 0; i < len(history); i += 1000 {
		add(ctx, b, db, history[i:min(i+1000, len(history))]...)
		drain(ctx, b, relay)
	}
	if err := db.Exec("ANALYZE outbox").Error; err != nil { // as autovacuum's analyze would have
		b.Fatal(err)
	}
	rounds := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		addBacklog(ctx, b, db, fmt.Sprintf("pending-%d", i), keys, pending)
		b.StartTimer()
		for n := -1; n != 0; rounds++ {
			var err error
			if n, err = relay.RelayOnce(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(rounds)/float64(b.N), "rounds/op")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(rounds), "ms/round")
}

// addBacklog adds perKey messages to each of keys keys, interleaved, their
// IDs prefixed with run so that every run adds new ones.
func addBacklog(ctx context.Context, b *testing.B, db *database.DB, run string, keys, perKey int) {
	b.Helper()
	msgs := keyed(topic, keyNames(keys), perKey)
	for j := range msgs {
		msgs[j].ID = run + ":" + msgs[j].ID
	}
	add(ctx, b, db, msgs...)
}

// ackAll is a Publisher for which the broker acknowledges every message at
// once.
type ackAll struct{}

func (ackAll) WriteMessages(context.Context, ...kafka.Message) error { return nil }
