package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
)

// testTimeout bounds every test, so a hung publish or poll fails the test
// instead of blocking until go test's own timeout.
const testTimeout = 30 * time.Second

// partitions is the partition count of the topics the tests create.
const partitions = 3

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// backends returns, per engine, a function that opens a fresh database with
// the outbox migrated. It starts one Postgres cluster for the calling test.
func backends(t testing.TB) map[string]func(t testing.TB) *database.DB {
	cluster := pgtest.Start(t)
	return map[string]func(t testing.TB) *database.DB{
		database.SQLite: func(t testing.TB) *database.DB {
			return openMigrated(t, "sqlite:"+filepath.Join(t.TempDir(), "outbox.db"))
		},
		database.Postgres: func(t testing.TB) *database.DB {
			return openMigrated(t, pgtest.NewDatabase(t, cluster))
		},
	}
}

func openMigrated(t testing.TB, url string) *database.DB {
	t.Helper()
	db, err := database.Open(t.Context(), url, discard())
	if err != nil {
		t.Fatalf("open database: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	if err := outbox.Migrate(t.Context(), db, discard()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return db
}

// add adds msgs in one committed transaction.
func add(ctx context.Context, t testing.TB, db *database.DB, msgs ...outbox.Message) {
	t.Helper()
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return outbox.Add(ctx, tx, msgs...) })
	if err != nil {
		t.Fatalf("add %d messages: %v", len(msgs), err)
	}
}

// keyed returns n messages for each of keys, interleaved, in the order a
// test adds them: message i of key k has ID "k/i" and payload "k/i".
func keyed(topic string, keys []string, n int) []outbox.Message {
	var msgs []outbox.Message
	for i := range n {
		for _, k := range keys {
			id := fmt.Sprintf("%s/%d", k, i)
			msgs = append(msgs, outbox.Message{ID: id, Topic: topic, Key: k, Payload: []byte(id)})
		}
	}
	return msgs
}

// keyNames returns n key names.
func keyNames(n int) []string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("order-%02d", i)
	}
	return keys
}

// startBroker starts a broker with topics created explicitly, so their
// partition count is known.
func startBroker(ctx context.Context, t testing.TB, topics ...string) string {
	t.Helper()
	addr := kafkatest.Start(t)
	client := &kafka.Client{Addr: kafka.TCP(addr)}
	req := &kafka.CreateTopicsRequest{}
	for _, topic := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		t.Fatalf("create topics: %v", err)
	}
	for topic, err := range resp.Errors {
		if err != nil {
			t.Fatalf("create topic %s: %v", topic, err)
		}
	}
	return addr
}

// newWriter returns the Writer a service would relay through.
func newWriter(t testing.TB, addr string) *messaging.Writer {
	t.Helper()
	w := messaging.NewWriter(messaging.Config{Brokers: []string{addr}, ClientID: "outbox-test"})
	t.Cleanup(func() { w.Close() })
	return w
}

// newRelay returns a Relay over db and pub with its own registry.
func newRelay(t testing.TB, db *database.DB, pub outbox.Publisher, opts outbox.RelayOptions) (*outbox.Relay, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := outbox.NewRelay(db, pub, opts, discard(), reg)
	if err != nil {
		t.Fatalf("NewRelay: %v", err)
	}
	return r, reg
}

// drain runs rounds of r until one relays nothing and returns how many it
// relayed. It fails the test on an error.
func drain(ctx context.Context, t testing.TB, r *outbox.Relay) int {
	t.Helper()
	total := 0
	for {
		n, err := r.RelayOnce(ctx)
		if err != nil {
			t.Fatalf("RelayOnce after %d relayed: %v", total, err)
		}
		if n == 0 {
			return total
		}
		total += n
	}
}

// readAll reads every record of topic, partition by partition, each in
// offset order.
func readAll(ctx context.Context, t *testing.T, addr, topic string) []kafka.Message {
	t.Helper()
	var all []kafka.Message
	for p := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			t.Fatalf("dial leader of %s/%d: %v", topic, p, err)
		}
		last, err := conn.ReadLastOffset()
		conn.Close()
		if err != nil {
			t.Fatalf("read last offset of %s/%d: %v", topic, p, err)
		}
		if last == 0 {
			continue
		}
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   []string{addr},
			Topic:     topic,
			Partition: p,
			MaxWait:   50 * time.Millisecond,
		})
		for {
			m, err := r.FetchMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("read %s/%d: %v", topic, p, err)
			}
			all = append(all, m)
			if m.Offset == last-1 {
				break
			}
		}
		r.Close()
	}
	return all
}

// record is what the tests compare of a published message.
type record struct {
	Key     string
	Value   string
	Headers map[string]string
}

func records(msgs []kafka.Message) []record {
	out := make([]record, len(msgs))
	for i, m := range msgs {
		headers := make(map[string]string)
		for _, h := range m.Headers {
			headers[h.Key] = string(h.Value)
		}
		out[i] = record{Key: string(m.Key), Value: string(m.Value), Headers: headers}
	}
	return out
}

// firstPublications returns, per key, the message ids in the order they
// were first published, and the number of duplicates. It fails the test if
// a key came from two partitions, since its order would then not be kept.
func firstPublications(t *testing.T, msgs []kafka.Message) (map[string][]string, int) {
	t.Helper()
	order := make(map[string][]string)
	partition := make(map[string]int)
	seen := make(map[string]bool)
	dups := 0
	for _, m := range msgs {
		key := string(m.Key)
		if p, ok := partition[key]; ok && p != m.Partition {
			t.Fatalf("key %q came from partitions %d and %d, want one", key, p, m.Partition)
		}
		partition[key] = m.Partition
		id, ok := header(m, outbox.HeaderMessageID)
		if !ok {
			t.Fatalf("message %q has no %s header", m.Value, outbox.HeaderMessageID)
		}
		if seen[id] {
			dups++
			continue
		}
		seen[id] = true
		order[key] = append(order[key], id)
	}
	return order, dups
}

// header returns the value of msg's header named key.
func header(msg kafka.Message, key string) (string, bool) {
	for _, h := range msg.Headers {
		if h.Key == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// wantOrder returns, per key, the ids of msgs in the order they were added.
func wantOrder(msgs []outbox.Message) map[string][]string {
	want := make(map[string][]string)
	for _, m := range msgs {
		want[m.Key] = append(want[m.Key], m.ID)
	}
	return want
}

// count returns the rows of the outbox matching where.
func count(t testing.TB, db *database.DB, where string) int64 {
	t.Helper()
	var n int64
	if err := db.Raw("SELECT COUNT(*) FROM outbox WHERE " + where).Scan(&n).Error; err != nil {
		t.Fatalf("count outbox rows where %s: %v", where, err)
	}
	return n
}

// metric returns the value of the gauge or counter name in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// errRolledBack rolls a transaction back.
var errRolledBack = errors.New("rolled back")

// errBrokerDown is what a down broker makes a Publisher return.
var errBrokerDown = errors.New("broker down")

// flakyPublisher fails its first failures calls without publishing, as a
// Writer does while the broker is down, and then publishes through next.
type flakyPublisher struct {
	next outbox.Publisher

	mu       sync.Mutex
	failures int
}

func (p *flakyPublisher) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	p.mu.Lock()
	fail := p.failures > 0
	if fail {
		p.failures--
	}
	p.mu.Unlock()
	if fail {
		return errBrokerDown
	}
	return p.next.WriteMessages(ctx, msgs...)
}

// crashingPublisher publishes through next and then, on every every-th call,
// calls crash: the relay dies after the broker acknowledged and before it
// marked the messages sent.
type crashingPublisher struct {
	next  outbox.Publisher
	every int
	crash func()

	mu      sync.Mutex
	calls   int
	crashes int
	acked   int
}

// setCrash makes crash the function that kills the relay from now on.
func (p *crashingPublisher) setCrash(crash func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.crash = crash
}

func (p *crashingPublisher) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	err := p.next.WriteMessages(ctx, msgs...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err == nil {
		p.acked += len(msgs)
	}
	p.calls++
	if p.every > 0 && p.calls%p.every == 0 {
		p.crashes++
		p.crash()
	}
	return err
}

// failingPublisher publishes through next every message but those bad
// reports, which fail (in kafka.WriteErrors) while fails is positive, as when
// one partition's leader is unavailable.
type failingPublisher struct {
	next  outbox.Publisher
	bad   func(kafka.Message) bool
	fails int
}

// keyIs reports the messages of key.
func keyIs(key string) func(kafka.Message) bool {
	return func(m kafka.Message) bool { return string(m.Key) == key }
}

// idIs reports the message whose HeaderMessageID is id.
func idIs(id string) func(kafka.Message) bool {
	return func(m kafka.Message) bool { got, _ := header(m, outbox.HeaderMessageID); return got == id }
}

func (p *failingPublisher) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	if p.fails == 0 {
		return p.next.WriteMessages(ctx, msgs...)
	}
	werrs := make(kafka.WriteErrors, len(msgs))
	var good []kafka.Message
	for i, m := range msgs {
		if p.bad(m) {
			werrs[i] = kafka.LeaderNotAvailable
		} else {
			good = append(good, m)
		}
	}
	if len(good) == len(msgs) {
		return p.next.WriteMessages(ctx, msgs...)
	}
	p.fails--
	if err := p.next.WriteMessages(ctx, good...); err != nil {
		return err
	}
	return werrs
}
