package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/poll"
)

// testTimeout bounds every test, so a hung fetch or rebalance fails the test
// instead of blocking until go test's own timeout.
const testTimeout = 30 * time.Second

// startBroker starts a broker for t and returns the client configuration
// that reaches it.
func startBroker(t *testing.T) messaging.Config {
	t.Helper()
	return messaging.Config{Brokers: []string{kafkatest.Start(t)}, ClientID: "messaging-test"}
}

// ensureTopics creates topics with partitions partitions.
func ensureTopics(ctx context.Context, t *testing.T, kc messaging.Config, partitions int, topics ...string) {
	t.Helper()
	if err := messaging.EnsureTopics(ctx, kc, partitions, topics...); err != nil {
		t.Fatalf("EnsureTopics(%d, %q): %v", partitions, topics, err)
	}
}

// consumerConfig returns the configuration of a consumer of topic in group,
// dead-lettering to topic+".dlq", tuned for a fast test: short backoff,
// heartbeats and fetch waits.
func consumerConfig(kc messaging.Config, group, topic string) messaging.ConsumerConfig {
	return messaging.ConsumerConfig{
		Config:          kc,
		GroupID:         group,
		Topics:          []string{topic},
		DeadLetterTopic: topic + ".dlq",
		MaxAttempts:     3,
		MinBackoff:      time.Millisecond,
		MaxBackoff:      10 * time.Millisecond,
		HandlerTimeout:  testTimeout,
		// The broker's floor; only a member that dies without leaving
		// waits this long, and these tests close their members.
		SessionTimeout:    6 * time.Second,
		RebalanceTimeout:  time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		MaxWait:           100 * time.Millisecond,
	}
}

// topicWithDLQ creates topic with partitions partitions and its dead-letter
// topic, as consumerConfig names it, with one partition.
func topicWithDLQ(ctx context.Context, t *testing.T, kc messaging.Config, topic string, partitions int) {
	t.Helper()
	ensureTopics(ctx, t, kc, partitions, topic)
	ensureTopics(ctx, t, kc, 1, topic+".dlq")
}

// running is a consumer whose Run runs in its own goroutine.
type running struct {
	consumer *messaging.Consumer
	cancel   context.CancelFunc
	done     chan error

	once sync.Once
	err  error
}

// newConsumer creates a consumer logging to t, closed in t.Cleanup.
func newConsumer(t *testing.T, cfg messaging.ConsumerConfig, h messaging.Handler, reg prometheus.Registerer) *messaging.Consumer {
	t.Helper()
	c, err := messaging.NewConsumer(cfg, h, testLogger(t), reg)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// run runs c until stopped; t.Cleanup stops it if the test did not.
func run(t *testing.T, c *messaging.Consumer) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{consumer: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() {
		r.cancel()
		r.wait(t)
	})
	return r
}

// runConsumer creates a consumer and runs it until stopped.
func runConsumer(t *testing.T, cfg messaging.ConsumerConfig, h messaging.Handler, reg prometheus.Registerer) *running {
	t.Helper()
	return run(t, newConsumer(t, cfg, h, reg))
}

// stop cancels Run's context and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t)
}

// wait returns what Run returned, failing t if it does not return in time.
func (r *running) wait(t *testing.T) error {
	t.Helper()
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(testTimeout):
			t.Fatalf("Run did not return within %v", testTimeout)
		}
	})
	return r.err
}

// testLogger logs to t's output, shown for failed tests and with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// delivery is the part of a handled message the tests compare.
type delivery struct {
	Key       string
	Value     string
	Partition int
	Offset    int64
}

func deliveryOf(msg kafka.Message) delivery {
	return delivery{Key: string(msg.Key), Value: string(msg.Value), Partition: msg.Partition, Offset: msg.Offset}
}

// recorder records the messages handed to it, safe for concurrent use.
type recorder struct {
	mu  sync.Mutex
	got []delivery
}

// record records msg.
func (r *recorder) record(msg kafka.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, deliveryOf(msg))
}

// deliveries returns what was recorded so far, in order.
func (r *recorder) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// values returns the values of what was recorded so far, in order.
func (r *recorder) values() []string {
	var vs []string
	for _, d := range r.deliveries() {
		vs = append(vs, d.Value)
	}
	return vs
}

// handler records each message and succeeds.
func (r *recorder) handler(_ context.Context, msg kafka.Message) error {
	r.record(msg)
	return nil
}

// waitFor polls until n messages are recorded and returns them.
func (r *recorder) waitFor(ctx context.Context, t *testing.T, n int) []delivery {
	t.Helper()
	poll.Until(ctx, t, fmt.Sprintf("%d messages handled", n), func() bool { return len(r.deliveries()) >= n })
	return r.deliveries()
}

// produce writes msgs to topic with the package's writer.
func produce(ctx context.Context, t *testing.T, kc messaging.Config, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := messaging.NewWriter(kc)
	defer w.Close()
	for i := range msgs {
		msgs[i].Topic = topic
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write %d messages to %s: %v", len(msgs), topic, err)
	}
}

// valued returns one message per value, all with key.
func valued(key string, values ...string) []kafka.Message {
	var msgs []kafka.Message
	for _, v := range values {
		msgs = append(msgs, kafka.Message{Key: []byte(key), Value: []byte(v)})
	}
	return msgs
}

// keyed returns perKey messages for each of keys keys, interleaved, each
// valued "key/sequence", starting at sequence from.
func keyed(keys, from, perKey int) []kafka.Message {
	var msgs []kafka.Message
	for seq := from; seq < from+perKey; seq++ {
		for k := range keys {
			key := fmt.Sprintf("order-%d", k)
			msgs = append(msgs, kafka.Message{Key: []byte(key), Value: fmt.Appendf(nil, "%s/%d", key, seq)})
		}
	}
	return msgs
}

// sequences returns, per key, the sequence numbers of values "key/sequence"
// in the order given.
func sequences(t *testing.T, values []string) map[string][]int {
	t.Helper()
	got := make(map[string][]int)
	for _, v := range values {
		key, seq, ok := strings.Cut(v, "/")
		n, err := strconv.Atoi(seq)
		if !ok || err != nil {
			t.Fatalf("value %q, want key/sequence", v)
		}
		got[key] = append(got[key], n)
	}
	return got
}

// messageValues returns the values of msgs.
func messageValues(msgs []kafka.Message) []string {
	var vs []string
	for _, m := range msgs {
		vs = append(vs, string(m.Value))
	}
	return vs
}

// client returns a kafka-go client of kc's brokers, closed in t.Cleanup.
func client(t *testing.T, kc messaging.Config) *kafka.Client {
	t.Helper()
	transport := &kafka.Transport{ClientID: kc.ClientID}
	t.Cleanup(transport.CloseIdleConnections)
	return &kafka.Client{Addr: kafka.TCP(kc.Brokers...), Transport: transport}
}

// committed returns group's committed offset of each of topic's partitions,
// -1 for none.
func committed(ctx context.Context, t *testing.T, kc messaging.Config, group, topic string, partitions int) map[int]int64 {
	t.Helper()
	got, err := committedOffsets(ctx, kc, group, topic, partitions)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// committedOffsets is committed for use outside the test's goroutine.
func committedOffsets(ctx context.Context, kc messaging.Config, group, topic string, partitions int) (map[int]int64, error) {
	transport := &kafka.Transport{ClientID: kc.ClientID}
	defer transport.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(kc.Brokers...), Transport: transport}
	req := &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: seq(partitions)}}
	resp, err := c.OffsetFetch(ctx, req)
	if err == nil {
		err = resp.Error
	}
	if errors.Is(err, kafka.GroupIdNotFound) {
		// The embedded broker knows a group only once a member joined it;
		// Kafka answers -1 offsets instead.
		none := make(map[int]int64)
		for p := range partitions {
			none[p] = -1
		}
		return none, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch offsets of group %s: %w", group, err)
	}
	got := make(map[int]int64)
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("fetch offset of group %s, %s/%d: %w", group, topic, p.Partition, p.Error)
		}
		got[p.Partition] = p.CommittedOffset
	}
	return got, nil
}

// endOffsets returns the offset the next message of each of topic's
// partitions will get.
func endOffsets(ctx context.Context, t *testing.T, kc messaging.Config, topic string, partitions int) map[int]int64 {
	t.Helper()
	var reqs []kafka.OffsetRequest
	for p := range partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	resp, err := client(t, kc).ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	got := make(map[int]int64)
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("list offsets of %s/%d: %v", topic, p.Partition, p.Error)
		}
		got[p.Partition] = p.LastOffset
	}
	return got
}

// seq returns 0, 1, ..., n-1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// readAll reads n messages from partition 0 of topic, without a group.
func readAll(ctx context.Context, t *testing.T, kc messaging.Config, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Topic: topic, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var msgs []kafka.Message
	for len(msgs) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read message %d of %d from %s: %v", len(msgs)+1, n, topic, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// metric returns the value of the counter, or the sample count of the
// histogram, named name with labels in reg; 0 if there is none.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// waitStable polls until group is stable with n members that each own
// partitions, so no rebalance is left to move partitions under a consumer.
func waitStable(ctx context.Context, t *testing.T, kc messaging.Config, group string, n int) {
	t.Helper()
	c := client(t, kc)
	poll.Until(ctx, t, fmt.Sprintf("group %s stable with %d members", group, n), func() bool {
		resp, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil || len(resp.Groups) != 1 {
			return false
		}
		g := resp.Groups[0]
		if g.Error != nil || g.GroupState != "Stable" || len(g.Members) != n {
			return false
		}
		for _, m := range g.Members {
			if len(m.MemberAssignments.Topics) == 0 {
				return false
			}
		}
		return true
	})
}
