package kafkatest_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/poll"
)

// testTimeout bounds every test, so a hung fetch or rebalance fails the test
// instead of blocking until go test's own timeout.
const testTimeout = 30 * time.Second

const (
	numKeys      = 10
	msgsPerKey   = 6
	numPartition = 3
)

// record is the part of a kafka.Message the tests compare.
type record struct {
	Partition int
	Offset    int64
	Key       string
	Value     string
}

func TestStartListensOnLoopback(t *testing.T) {
	addr := kafkatest.Start(t)

	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("SplitHostPort(%q): %v", addr, err)
	}
	if host != "127.0.0.1" {
		t.Errorf("host = %q, want 127.0.0.1", host)
	}
	if port == "0" {
		t.Errorf("port = %q, want the port actually bound", port)
	}
}

// TestGroupResumesAfterCommittedOffsets is the contract the consumer loop
// relies on: a consumer group that commits explicitly resumes, after a
// restart, exactly after the offsets it committed, and keyed messages keep
// their per-key order.
func TestGroupResumesAfterCommittedOffsets(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	addr := kafkatest.Start(t)
	const topic, group = "orders", "order-service"
	createTopic(ctx, t, addr, topic, numPartition)
	produce(ctx, t, addr, topic, keyedMessages())

	first := newGroupReader(t, addr, topic, group)
	got := fetch(ctx, t, first, numKeys*msgsPerKey)
	if diff := cmp.Diff(wantSequences(), keySequences(t, got)); diff != "" {
		t.Fatalf("first reader per-key sequences mismatch (-want +got):\n%s", diff)
	}
	if parts := partitionsUsed(got); len(parts) < 2 {
		t.Fatalf("messages landed on partitions %v, want at least 2 so the test covers several partitions", parts)
	}
	half := len(got) / 2
	if err := first.CommitMessages(ctx, got[:half]...); err != nil {
		t.Fatalf("commit first half: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("close first reader: %v", err)
	}

	// Within a partition the reader fetches in offset order, so the first half
	// of the fetched messages is a prefix of every partition and the committed
	// offsets sit right after it.
	second := newGroupReader(t, addr, topic, group)
	rest := fetch(ctx, t, second, len(got)-half)
	if diff := cmp.Diff(byPartition(got[half:]), byPartition(rest)); diff != "" {
		t.Errorf("second reader did not resume after the committed offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(keySequences(t, got[half:]), keySequences(t, rest)); diff != "" {
		t.Errorf("second reader per-key sequences mismatch (-want +got):\n%s", diff)
	}
}

// TestDataDirSurvivesRestart closes a broker with a data dir and starts a new
// one on the same dir: the records and the group's committed offsets are
// still there.
func TestDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	const topic, group = "payments", "payment-service"
	var sent []kafka.Message

	// Each subtest owns one broker: Start closes it when the subtest ends.
	ok := t.Run("before restart", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		addr := kafkatest.Start(t, kfake.DataDir(dir))
		createTopic(ctx, t, addr, topic, numPartition)
		produce(ctx, t, addr, topic, keyedMessages())

		r := newGroupReader(t, addr, topic, group)
		sent = fetch(ctx, t, r, numKeys*msgsPerKey)
		if err := r.CommitMessages(ctx, sent[:len(sent)/2]...); err != nil {
			t.Fatalf("commit first half: %v", err)
		}
	})
	if !ok {
		return
	}

	t.Run("after restart", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		addr := kafkatest.Start(t, kfake.DataDir(dir))

		fresh := newGroupReader(t, addr, topic, "auditor")
		all := fetch(ctx, t, fresh, len(sent))
		if diff := cmp.Diff(byPartition(sent), byPartition(all)); diff != "" {
			t.Errorf("records after restart mismatch (-want +got):\n%s", diff)
		}

		resumed := newGroupReader(t, addr, topic, group)
		rest := fetch(ctx, t, resumed, len(sent)-len(sent)/2)
		if diff := cmp.Diff(byPartition(sent[len(sent)/2:]), byPartition(rest)); diff != "" {
			t.Errorf("group did not resume after its committed offsets (-want +got):\n%s", diff)
		}
	})
}

// TestRebalanceSplitsPartitions runs two members of one group: once the
// group is stable they own disjoint partitions and every message reaches
// exactly one of them, in per-key order.
func TestRebalanceSplitsPartitions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	addr := kafkatest.Start(t)
	const topic, group = "stock", "inventory-service"
	createTopic(ctx, t, addr, topic, numPartition)

	members := map[string]*kafka.Reader{
		"a": newGroupReader(t, addr, topic, group),
		"b": newGroupReader(t, addr, topic, group),
	}
	waitStable(ctx, t, addr, group, len(members))
	produce(ctx, t, addr, topic, keyedMessages())

	type delivery struct {
		member string
		msg    kafka.Message
	}
	consumeCtx, stop := context.WithCancel(ctx)
	defer stop()
	deliveries := make(chan delivery)
	errs := make(chan error, len(members))
	for name, r := range members {
		go func() {
			for {
				m, err := r.FetchMessage(consumeCtx)
				if err == nil {
					err = r.CommitMessages(consumeCtx, m)
				}
				if err != nil {
					errs <- fmt.Errorf("member %s: %w", name, err)
					return
				}
				select {
				case deliveries <- delivery{name, m}:
				case <-consumeCtx.Done():
					errs <- nil
					return
				}
			}
		}()
	}

	var got []kafka.Message
	owners := make(map[int]map[string]bool)
	for len(got) < numKeys*msgsPerKey {
		select {
		case d := <-deliveries:
			got = append(got, d.msg)
			if owners[d.msg.Partition] == nil {
				owners[d.msg.Partition] = make(map[string]bool)
			}
			owners[d.msg.Partition][d.member] = true
		case err := <-errs:
			t.Fatalf("consume: %v", err)
		case <-ctx.Done():
			t.Fatalf("received %d of %d messages: %v", len(got), numKeys*msgsPerKey, ctx.Err())
		}
	}
	stop()

	if diff := cmp.Diff(wantSequences(), keySequences(t, got)); diff != "" {
		t.Errorf("per-key sequences mismatch (-want +got):\n%s", diff)
	}
	for p, names := range owners {
		if len(names) != 1 {
			t.Errorf("partition %d was consumed by members %v, want one", p, names)
		}
	}
}

// TestCreatedTopicSurvivesCrash starts a second broker on the data dir of a
// first one that is still running, which sees the directory as a crash would
// leave it: nothing saved by Close. Records and commits of a topic created
// with CreateTopics are there. (A topic created automatically is only written
// to topics.json by Close, so a crash loses it with all its records.)
func TestCreatedTopicSurvivesCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dir := t.TempDir()
	const topic, group = "refunds", "payment-service"

	crashed := kafkatest.Start(t, kfake.DataDir(dir))
	createTopic(ctx, t, crashed, topic, numPartition)
	produce(ctx, t, crashed, topic, keyedMessages())
	r := newGroupReader(t, crashed, topic, group)
	sent := fetch(ctx, t, r, numKeys*msgsPerKey)
	if err := r.CommitMessages(ctx, sent[:len(sent)/2]...); err != nil {
		t.Fatalf("commit first half: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close reader: %v", err)
	}

	restarted := kafkatest.Start(t, kfake.DataDir(dir))
	all := fetch(ctx, t, newGroupReader(t, restarted, topic, "auditor"), len(sent))
	if diff := cmp.Diff(byPartition(sent), byPartition(all)); diff != "" {
		t.Errorf("records after crash mismatch (-want +got):\n%s", diff)
	}
	rest := fetch(ctx, t, newGroupReader(t, restarted, topic, group), len(sent)-len(sent)/2)
	if diff := cmp.Diff(byPartition(sent[len(sent)/2:]), byPartition(rest)); diff != "" {
		t.Errorf("group did not resume after its committed offsets (-want +got):\n%s", diff)
	}
}

// waitStable polls until group is stable with n members that each own
// partitions, so no rebalance is left to move partitions under a consumer.
func waitStable(ctx context.Context, t *testing.T, addr, group string, n int) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addr)}
	poll.UntilNil(ctx, t, fmt.Sprintf("group %s stable with %d members", group, n), func() error {
		resp, err := client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		if err != nil {
			return err
		}
		if len(resp.Groups) != 1 || !stable(resp.Groups[0], n) {
			return fmt.Errorf("response %+v", resp)
		}
		return nil
	})
}

// stable reports whether g is stable with n members that each own partitions.
func stable(g kafka.DescribeGroupsResponseGroup, n int) bool {
	if g.Error != nil || g.GroupState != "Stable" || len(g.Members) != n {
		return false
	}
	for _, m := range g.Members {
		if len(m.MemberAssignments.Topics) == 0 {
			return false
		}
	}
	return true
}

// createTopic creates topic through the controller, as an operator tool
// would, instead of relying on automatic creation.
func createTopic(ctx context.Context, t *testing.T, addr, topic string, partitions int) {
	t.Helper()
	var d kafka.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer conn.Close()
	controller, err := conn.Controller()
	if err != nil {
		t.Fatalf("find controller: %v", err)
	}
	ctrl, err := d.DialContext(ctx, "tcp", net.JoinHostPort(controller.Host, strconv.Itoa(controller.Port)))
	if err != nil {
		t.Fatalf("dial controller: %v", err)
	}
	defer ctrl.Close()
	err = ctrl.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1})
	if err != nil {
		t.Fatalf("create topic %s: %v", topic, err)
	}
}

// keyedMessages returns msgsPerKey messages for each of numKeys keys,
// interleaved, each valued "key/sequence".
func keyedMessages() []kafka.Message {
	var msgs []kafka.Message
	for seq := range msgsPerKey {
		for k := range numKeys {
			key := fmt.Sprintf("order-%d", k)
			msgs = append(msgs, kafka.Message{Key: []byte(key), Value: fmt.Appendf(nil, "%s/%d", key, seq)})
		}
	}
	return msgs
}

// produce writes msgs as the services do: acks from all in-sync replicas and
// the key hashed to a partition, so one key keeps its order.
func produce(ctx context.Context, t *testing.T, addr, topic string, msgs []kafka.Message) {
	t.Helper()
	w := &kafka.Writer{
		Addr:         kafka.TCP(addr),
		Topic:        topic,
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 10 * time.Millisecond, // the default 1s would hold every batch that is not full
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("write %d messages: %v", len(msgs), err)
	}
}

// newGroupReader returns a consumer-group reader tuned for a fast test and
// closes it in t.Cleanup (closing twice is harmless).
func newGroupReader(t *testing.T, addr, topic, group string) *kafka.Reader {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        []string{addr},
		GroupID:        group,
		Topic:          topic,
		StartOffset:    kafka.FirstOffset,
		CommitInterval: 0, // CommitMessages commits synchronously
		MaxWait:        100 * time.Millisecond,
		// kfake refuses sessions shorter than 6s (its
		// group.min.session.timeout.ms): FetchMessage would return
		// INVALID_SESSION_TIMEOUT. The session only matters when a
		// member dies without leaving; Close leaves the group.
		SessionTimeout: 6 * time.Second,
		// A member that joins waits until every known member has
		// rejoined or this long (the largest of the members' values)
		// has passed, so it bounds the stall a crashed member causes.
		RebalanceTimeout:  2 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		JoinGroupBackoff:  100 * time.Millisecond,
		ErrorLogger:       kafka.LoggerFunc(t.Logf),
	})
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("close reader: %v", err)
		}
	})
	return r
}

// fetch fetches n messages without committing them.
func fetch(ctx context.Context, t *testing.T, r *kafka.Reader, n int) []kafka.Message {
	t.Helper()
	msgs := make([]kafka.Message, 0, n)
	for len(msgs) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch message %d of %d: %v", len(msgs)+1, n, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// byPartition groups msgs by partition, keeping their order.
func byPartition(msgs []kafka.Message) map[int][]record {
	got := make(map[int][]record)
	for _, m := range msgs {
		got[m.Partition] = append(got[m.Partition], record{
			Partition: m.Partition,
			Offset:    m.Offset,
			Key:       string(m.Key),
			Value:     string(m.Value),
		})
	}
	return got
}

// keySequences returns, per key, the sequence numbers of msgs in the order
// they were received. It fails the test if one key came from two partitions,
// since then its order would not be kept.
func keySequences(t *testing.T, msgs []kafka.Message) map[string][]string {
	t.Helper()
	got := make(map[string][]string)
	partition := make(map[string]int)
	for _, m := range msgs {
		key, seq, ok := strings.Cut(string(m.Value), "/")
		if !ok || key != string(m.Key) {
			t.Fatalf("message key %q value %q, want value key/sequence", m.Key, m.Value)
		}
		if p, seen := partition[key]; seen && p != m.Partition {
			t.Fatalf("key %q came from partitions %d and %d, want one", key, p, m.Partition)
		}
		partition[key] = m.Partition
		got[key] = append(got[key], seq)
	}
	return got
}

// wantSequences is keySequences of everything keyedMessages produces.
func wantSequences() map[string][]string {
	want := make(map[string][]string)
	for seq := range msgsPerKey {
		for k := range numKeys {
			key := fmt.Sprintf("order-%d", k)
			want[key] = append(want[key], strconv.Itoa(seq))
		}
	}
	return want
}

// partitionsUsed returns the partitions msgs came from.
func partitionsUsed(msgs []kafka.Message) map[int]int {
	used := make(map[int]int)
	for _, m := range msgs {
		used[m.Partition]++
	}
	return used
}
