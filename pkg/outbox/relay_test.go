package outbox_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/poll"
)

const topic = "inventory.commands"

// gauges are a Relay's metrics at one moment.
type gauges struct {
	Pending, OldestAge, Published, Failures float64
}

func readGauges(t *testing.T, reg *prometheus.Registry) gauges {
	t.Helper()
	return gauges{
		Pending:   metric(t, reg, "outbox_pending_messages"),
		OldestAge: metric(t, reg, "outbox_oldest_pending_age_seconds"),
		Published: metric(t, reg, "outbox_published_total"),
		Failures:  metric(t, reg, "outbox_publish_failures_total"),
	}
}

// TestRelay relays through the real Kafka-protocol broker from both engines.
func TestRelay(t *testing.T) {
	for dialect, newDB := range backends(t) {
		t.Run(dialect, func(t *testing.T) {
			t.Run("publishes committed messages with their headers, never rolled-back ones", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				relay, reg := newRelay(t, db, newWriter(t, addr), outbox.RelayOptions{})
				// The trace context of the adding transaction, from a
				// caller; without a tracer provider installed the relay
				// passes it on as it is.
				trace := map[string]string{
					"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
					"tracestate":  "shop=checkout",
				}
				traced := messaging.ExtractTraceContext(ctx, kafka.Message{Headers: []kafka.Header{
					{Key: "traceparent", Value: []byte(trace["traceparent"])},
					{Key: "tracestate", Value: []byte(trace["tracestate"])},
				}})
				headers := map[string]string{"content-type": "application/x-protobuf"}
				committed := outbox.Message{ID: "m-1", Topic: topic, Key: "order-1", Headers: headers, Payload: []byte(`{"sku":"MUG"}`)}
				rolledBack := outbox.Message{ID: "m-2", Topic: topic, Key: "order-2", Payload: []byte(`{"sku":"CAP"}`)}

				add(traced, t, db, committed)
				errDeclined := errors.New("declined")
				err := db.Transaction(func(tx *gorm.DB) error {
					if err := outbox.Add(ctx, tx, rolledBack); err != nil {
						return err
					}
					return errDeclined
				})
				if !errors.Is(err, errDeclined) {
					t.Fatalf("rolled-back transaction = %v, want %v", err, errDeclined)
				}
				if n := drain(ctx, t, relay); n != 1 {
					t.Errorf("relayed %d messages, want 1", n)
				}

				want := []record{{
					Key:   "order-1",
					Value: `{"sku":"MUG"}`,
					Headers: map[string]string{
						outbox.HeaderMessageID: "m-1",
						"content-type":         headers["content-type"],
						"traceparent":          trace["traceparent"],
						"tracestate":           trace["tracestate"],
					},
				}}
				if diff := cmp.Diff(want, records(readAll(ctx, t, addr, topic))); diff != "" {
					t.Errorf("published (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(gauges{Published: 1}, readGauges(t, reg)); diff != "" {
					t.Errorf("metrics (-want +got):\n%s", diff)
				}
			})

			t.Run("keeps per-key order, and a restarted relay resumes", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				w := newWriter(t, addr)
				msgs := keyed(topic, keyNames(5), 8)
				add(ctx, t, db, msgs...)

				opts := outbox.RelayOptions{BatchSize: 3}
				first, _ := newRelay(t, db, w, opts)
				for round := range 4 {
					if n, err := first.RelayOnce(ctx); n != opts.BatchSize || err != nil {
						t.Fatalf("round %d = %d, %v; want %d, nil", round, n, err, opts.BatchSize)
					}
				}
				restarted, _ := newRelay(t, db, w, opts)
				if n, want := drain(ctx, t, restarted), len(msgs)-4*opts.BatchSize; n != want {
					t.Errorf("restarted relay relayed %d, want the %d left", n, want)
				}

				order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order (-want +got):\n%s", diff)
				}
				if dups != 0 {
					t.Errorf("%d duplicates, want none without a crash", dups)
				}
			})

			t.Run("a crash between publish and mark publishes again and loses nothing", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				w := newWriter(t, addr)
				msgs := keyed(topic, keyNames(2), 2)
				add(ctx, t, db, msgs...)

				// The relay dies once the broker acknowledged its first
				// round, before it could mark the round's messages sent.
				relayCtx, crash := context.WithCancel(ctx)
				dying, _ := newRelay(t, db, &crashingPublisher{next: w, every: 1, crash: crash}, outbox.RelayOptions{})
				if n, err := dying.RelayOnce(relayCtx); n != 0 || err == nil {
					t.Fatalf("RelayOnce of the dying relay = %d, %v; want 0 and an error", n, err)
				}
				if n := count(t, db, "sent_at IS NULL"); n != int64(len(msgs)) {
					t.Fatalf("%d messages pending after the crash, want all %d", n, len(msgs))
				}

				restarted, _ := newRelay(t, db, w, outbox.RelayOptions{})
				if n := drain(ctx, t, restarted); n != len(msgs) {
					t.Errorf("restarted relay relayed %d, want %d", n, len(msgs))
				}
				order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order of first publications (-want +got):\n%s", diff)
				}
				if dups != 2 {
					t.Errorf("%d duplicates, want 2: the heads of both keys published again", dups)
				}
			})

			t.Run("while the broker is down failures are counted, rows kept, and Run recovers", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				msgs := keyed(topic, keyNames(2), 3)
				add(ctx, t, db, msgs...)

				const downRounds = 3
				down := &flakyPublisher{next: newWriter(t, addr), failures: downRounds}
				relay, reg := newRelay(t, db, down, outbox.RelayOptions{PollInterval: 5 * time.Millisecond})
				if n, err := relay.RelayOnce(ctx); n != 0 || !errors.Is(err, errBrokerDown) {
					t.Fatalf("RelayOnce while down = %d, %v; want 0, %v", n, err, errBrokerDown)
				}
				if n := count(t, db, "sent_at IS NULL"); n != int64(len(msgs)) {
					t.Fatalf("%d messages pending, want all %d", n, len(msgs))
				}
				g := readGauges(t, reg)
				if diff := cmp.Diff(gauges{Pending: 6, Failures: 2}, g, ignoreAge); diff != "" {
					t.Errorf("metrics while down (-want +got):\n%s", diff)
				}

				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { relay.Run(runCtx); close(done) }()
				// The pending gauge falls to 0 only after the marks committed.
				poll.Until(ctx, t, "Run to relay everything", func() bool { return readGauges(t, reg).Pending == 0 })
				stop()
				<-done

				if n := count(t, db, "sent_at IS NULL"); n != 0 {
					t.Errorf("%d messages pending, want none", n)
				}
				// Every round while down failed both keys' heads.
				want := gauges{Published: 6, Failures: 2 * downRounds}
				if diff := cmp.Diff(want, readGauges(t, reg), ignoreAge); diff != "" {
					t.Errorf("metrics after recovery (-want +got):\n%s", diff)
				}
				order, _ := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order (-want +got):\n%s", diff)
				}
			})

			t.Run("a message that fails holds back only its own key", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				msgs := keyed(topic, []string{"a", "b"}, 2)
				add(ctx, t, db, msgs...)

				pub := &failingPublisher{next: newWriter(t, addr), bad: keyIs("a"), fails: 1}
				relay, reg := newRelay(t, db, pub, outbox.RelayOptions{})
				// The round publishes both of b's and none of a's.
				if n, err := relay.RelayOnce(ctx); n != 2 || !errors.Is(err, kafka.LeaderNotAvailable) {
					t.Fatalf("RelayOnce = %d, %v; want 2, %v", n, err, kafka.LeaderNotAvailable)
				}
				if n := count(t, db, "sent_at IS NULL AND key = 'a'"); n != 2 {
					t.Errorf("%d of a's messages pending, want both", n)
				}
				if n := drain(ctx, t, relay); n != 2 {
					t.Errorf("relayed %d more, want 2", n)
				}
				order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order (-want +got):\n%s", diff)
				}
				if dups != 0 {
					t.Errorf("%d duplicates, want none", dups)
				}
				if diff := cmp.Diff(gauges{Published: 4, Failures: 1}, readGauges(t, reg)); diff != "" {
					t.Errorf("metrics (-want +got):\n%s", diff)
				}
			})

			t.Run("publishes many messages of a key in one round, in order", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				const perKey = 40
				msgs := keyed(topic, []string{"a", "b", "c"}, perKey)
				add(ctx, t, db, msgs...)

				relay, reg := newRelay(t, db, newWriter(t, addr), outbox.RelayOptions{BatchSize: 100})
				// One message per key and round would take perKey rounds.
				if n, err := relay.RelayOnce(ctx); n != 100 || err != nil {
					t.Fatalf("RelayOnce = %d, %v; want 100, nil", n, err)
				}
				if n := drain(ctx, t, relay); n != len(msgs)-100 {
					t.Errorf("relayed %d more, want %d", n, len(msgs)-100)
				}
				order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order (-want +got):\n%s", diff)
				}
				if dups != 0 {
					t.Errorf("%d duplicates, want none", dups)
				}
				if diff := cmp.Diff(gauges{Published: float64(len(msgs))}, readGauges(t, reg)); diff != "" {
					t.Errorf("metrics (-want +got):\n%s", diff)
				}
			})

			t.Run("a message that fails holds back the rest of its key in the round", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				msgs := keyed(topic, []string{"a", "b"}, 6)
				add(ctx, t, db, msgs...)

				pub := &failingPublisher{next: newWriter(t, addr), bad: idIs("a/3"), fails: 1}
				relay, reg := newRelay(t, db, pub, outbox.RelayOptions{})
				// a/0 to a/2 and all of b; a/3 fails, a/4 and a/5 wait.
				if n, err := relay.RelayOnce(ctx); n != 9 || !errors.Is(err, kafka.LeaderNotAvailable) {
					t.Fatalf("RelayOnce = %d, %v; want 9, %v", n, err, kafka.LeaderNotAvailable)
				}
				var pending []string
				if err := db.Raw("SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY seq").Scan(&pending).Error; err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]string{"a/3", "a/4", "a/5"}, pending); diff != "" {
					t.Errorf("pending after the round (-want +got):\n%s", diff)
				}
				if n := drain(ctx, t, relay); n != 3 {
					t.Errorf("relayed %d more, want 3", n)
				}
				order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order (-want +got):\n%s", diff)
				}
				if dups != 0 {
					t.Errorf("%d duplicates, want none", dups)
				}
				if diff := cmp.Diff(gauges{Published: 12, Failures: 1}, readGauges(t, reg)); diff != "" {
					t.Errorf("metrics (-want +got):\n%s", diff)
				}
			})

			t.Run("gauges show the pending messages and the age of the oldest", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				add(ctx, t, db, keyed(topic, keyNames(3), 1)...)
				var oldest []time.Time
				if err := db.Raw("SELECT created_at FROM outbox ORDER BY seq LIMIT 1").Scan(&oldest).Error; err != nil || len(oldest) != 1 {
					t.Fatalf("read created_at: %v, %v", oldest, err)
				}
				now := func() time.Time { return oldest[0].Add(90 * time.Second) }
				pub := &flakyPublisher{next: newWriter(t, addr), failures: 1}
				relay, reg := newRelay(t, db, pub, outbox.RelayOptions{Now: now})

				rounds := []struct {
					wantErr error
					want    gauges
				}{
					{errBrokerDown, gauges{Pending: 3, OldestAge: 90, Failures: 3}},
					{nil, gauges{Published: 3, Failures: 3}},
				}
				for i, round := range rounds {
					if _, err := relay.RelayOnce(ctx); !errors.Is(err, round.wantErr) {
						t.Errorf("round %d = %v, want %v", i+1, err, round.wantErr)
					}
					if diff := cmp.Diff(round.want, readGauges(t, reg)); diff != "" {
						t.Errorf("after round %d (-want +got):\n%s", i+1, diff)
					}
				}
			})

			t.Run("Notify wakes an idle Run", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				relay, reg := newRelay(t, db, newWriter(t, addr), outbox.RelayOptions{PollInterval: time.Hour})
				msgs := keyed(topic, keyNames(1), 2)
				add(ctx, t, db, msgs[0])

				runCtx, stop := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() { relay.Run(runCtx); close(done) }()
				defer func() { stop(); <-done }()
				poll.Until(ctx, t, "the first message", func() bool { return readGauges(t, reg).Published == 1 })
				// Run now goes idle for an hour, unless woken.
				add(ctx, t, db, msgs[1])
				relay.Notify()
				poll.Until(ctx, t, "the second message", func() bool { return readGauges(t, reg).Published == 2 })
			})

			t.Run("Prune deletes only rows sent more than Retention ago", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				w := newWriter(t, addr)
				sentAt := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
				at := func(d time.Duration) func() time.Time { return func() time.Time { return sentAt.Add(d) } }

				add(ctx, t, db, keyed(topic, keyNames(2), 1)...)
				sender, _ := newRelay(t, db, w, outbox.RelayOptions{Now: at(0)})
				drain(ctx, t, sender)
				add(ctx, t, db, outbox.Message{ID: "pending", Topic: topic, Key: "order-9"})

				tests := []struct {
					name      string
					retention time.Duration
					now       time.Duration
					want      int
				}{
					{"kept for ever", -1, 1000 * time.Hour, 0},
					{"within retention", time.Hour, 59 * time.Minute, 0},
					{"past retention", time.Hour, 61 * time.Minute, 2},
					{"already pruned", time.Hour, 62 * time.Minute, 0},
				}
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						pruner, _ := newRelay(t, db, w, outbox.RelayOptions{Retention: tt.retention, Now: at(tt.now)})
						if n, err := pruner.Prune(ctx); n != tt.want || err != nil {
							t.Errorf("Prune = %d, %v; want %d, nil", n, err, tt.want)
						}
					})
				}
				if n := count(t, db, "sent_at IS NULL"); n != 1 {
					t.Errorf("%d pending rows left, want the 1 pending", n)
				}
			})
		})
	}
}

// ignoreAge leaves out the age gauge, which depends on the wall clock.
var ignoreAge = cmpopts.IgnoreFields(gauges{}, "OldestAge")

func TestNewRelayRefusesARegistryWithItsMetrics(t *testing.T) {
	db := openMigrated(t, "sqlite:"+t.TempDir()+"/outbox.db")
	reg := prometheus.NewRegistry()
	if _, err := outbox.NewRelay(db, nil, outbox.RelayOptions{}, discard(), reg); err != nil {
		t.Fatalf("first NewRelay: %v", err)
	}
	if _, err := outbox.NewRelay(db, nil, outbox.RelayOptions{}, discard(), reg); err == nil {
		t.Error("second NewRelay on the same registry succeeded, want an error")
	}
}
