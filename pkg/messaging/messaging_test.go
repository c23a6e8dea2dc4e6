package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/messaging"
)

func TestPingSucceedsAgainstBroker(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	if err := kc.Ping(ctx); err != nil {
		t.Errorf("Ping(%v) = %v, want nil", kc.Brokers, err)
	}
}

func TestPingFailsWithoutBrokers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()

	// A listener that accepts and says nothing is not Kafka.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	tests := []struct {
		name    string
		brokers []string
	}{
		{"none configured", nil},
		{"closed port", []string{"127.0.0.1:1"}},
		{"not a kafka broker", []string{silent.Addr().String()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			if err := (messaging.Config{Brokers: tt.brokers}).Ping(ctx); err == nil {
				t.Errorf("Ping(%v) = nil, want an error", tt.brokers)
			}
		})
	}
}

func TestEnsureTopics(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	ensureTopics(ctx, t, kc, 2, "stock.events")

	t.Run("creates missing topics and leaves existing ones", func(t *testing.T) {
		if err := messaging.EnsureTopics(ctx, kc, 5, "stock.events", "orders", "orders.dlq"); err != nil {
			t.Fatalf("EnsureTopics: %v", err)
		}
		want := map[string]int{"stock.events": 2, "orders": 5, "orders.dlq": 5}
		if diff := cmp.Diff(want, partitionCounts(ctx, t, kc, "stock.events", "orders", "orders.dlq")); diff != "" {
			t.Errorf("partitions per topic (-want +got):\n%s", diff)
		}
	})
	t.Run("is idempotent", func(t *testing.T) {
		for range 2 {
			if err := messaging.EnsureTopics(ctx, kc, 5, "orders"); err != nil {
				t.Fatalf("EnsureTopics of an existing topic: %v", err)
			}
		}
	})

	bad := []struct {
		name       string
		kc         messaging.Config
		partitions int
		topics     []string
	}{
		{"no brokers", messaging.Config{}, 1, []string{"a"}},
		{"no partitions", kc, 0, []string{"a"}},
		// Kafka refuses names that differ only in '.' and '_' (metric names collide).
		{"name collides with an existing topic", kc, 1, []string{"a", "stock_events"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := messaging.EnsureTopics(ctx, tt.kc, tt.partitions, tt.topics...); err == nil {
				t.Errorf("EnsureTopics(%d, %q) = nil, want an error", tt.partitions, tt.topics)
			}
		})
	}
}

// TestEnsureTopicsWithRetry: topics are created once the broker comes up,
// a request no broker would accept fails at once, and the retries end with
// ctx.
func TestEnsureTopicsWithRetry(t *testing.T) {
	t.Parallel()
	t.Run("waits for the broker", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		port := freePort(t)
		kc := messaging.Config{Brokers: []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}, ClientID: "messaging-test"}
		retried := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() {
			done <- messaging.EnsureTopicsWithRetry(ctx, kc, 4, retryLogger(t, retried), "orders", "orders.dlq")
		}()
		select {
		case <-retried: // an attempt failed: nothing listens on port yet
		case err := <-done:
			t.Fatalf("EnsureTopicsWithRetry = %v before the broker started, want it to wait", err)
		case <-ctx.Done():
			t.Fatal("no failed attempt logged before the broker started")
		}
		kafkatest.Start(t, kfake.Ports(port))
		if err := <-done; err != nil {
			t.Fatalf("EnsureTopicsWithRetry = %v once the broker started, want nil", err)
		}
		want := map[string]int{"orders": 4, "orders.dlq": 4}
		if diff := cmp.Diff(want, partitionCounts(ctx, t, kc, "orders", "orders.dlq")); diff != "" {
			t.Errorf("partitions per topic (-want +got):\n%s", diff)
		}
	})

	t.Run("gives up when ctx ends", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		kc := messaging.Config{Brokers: []string{"127.0.0.1:1"}}
		err := messaging.EnsureTopicsWithRetry(ctx, kc, 1, testLogger(t), "orders")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("EnsureTopicsWithRetry without a broker = %v, want context.DeadlineExceeded", err)
		}
	})

	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	ensureTopics(ctx, t, kc, 1, "stock.events")
	bad := []struct {
		name       string
		kc         messaging.Config
		partitions int
		topics     []string
	}{
		{"no brokers", messaging.Config{}, 1, []string{"a"}},
		{"no partitions", kc, 0, []string{"a"}},
		{"name collides with an existing topic", kc, 1, []string{"stock_events"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			// Retrying would only end with ctx: the error must come first.
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			err := messaging.EnsureTopicsWithRetry(ctx, tt.kc, tt.partitions, testLogger(t), tt.topics...)
			if err == nil || ctx.Err() != nil {
				t.Errorf("EnsureTopicsWithRetry(%d, %q) = %v after ctx ended: %v; want an error at once", tt.partitions, tt.topics, err, ctx.Err())
			}
		})
	}
}

// freePort returns a port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// retryLogger logs to t and signals on retried, without blocking, each time
// a retry is logged.
func retryLogger(t *testing.T, retried chan<- struct{}) *slog.Logger {
	return slog.New(retrySignal{Handler: testLogger(t).Handler(), retried: retried})
}

// retrySignal is a slog.Handler that signals the records saying "will retry".
type retrySignal struct {
	slog.Handler
	retried chan<- struct{}
}

func (h retrySignal) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "will retry") {
		select {
		case h.retried <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

// partitionCounts returns the number of partitions of each of topics.
func partitionCounts(ctx context.Context, t *testing.T, kc messaging.Config, topics ...string) map[string]int {
	t.Helper()
	resp, err := client(t, kc).Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		t.Fatalf("metadata of %q: %v", topics, err)
	}
	got := make(map[string]int)
	for _, topic := range resp.Topics {
		if topic.Error != nil {
			t.Fatalf("metadata of %s: %v", topic.Name, topic.Error)
		}
		got[topic.Name] = len(topic.Partitions)
	}
	return got
}

// TestWriterKeepsKeysOnOnePartition: the writer acknowledges with all
// replicas, and all messages of a key land on one partition in the order
// written.
func TestWriterKeepsKeysOnOnePartition(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, partitions = "orders", 3
	ensureTopics(ctx, t, kc, partitions, topic)
	msgs := keyed(6, 0, 4)

	w := messaging.NewWriter(kc)
	if w.RequiredAcks != kafka.RequireAll {
		t.Errorf("RequiredAcks = %v, want RequireAll", w.RequiredAcks)
	}
	for i := range msgs {
		msgs[i].Topic = topic
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("WriteMessages: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := w.WriteMessages(ctx, msgs[0]); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("WriteMessages after Close = %v, want io.ErrClosedPipe", err)
	}

	var got []string
	keyPartition := make(map[string]int)
	for p, end := range endOffsets(ctx, t, kc, topic, partitions) {
		for _, m := range readPartition(ctx, t, kc, topic, p, int(end)) {
			got = append(got, string(m.Value))
			if q, seen := keyPartition[string(m.Key)]; seen && q != p {
				t.Errorf("key %s on partitions %d and %d, want one", m.Key, q, p)
			}
			keyPartition[string(m.Key)] = p
		}
	}
	if diff := cmp.Diff(sequences(t, messageValues(msgs)), sequences(t, got)); diff != "" {
		t.Errorf("per-key order (-want +got):\n%s", diff)
	}
}

// readPartition reads n messages from partition p of topic, without a group.
func readPartition(ctx context.Context, t *testing.T, kc messaging.Config, topic string, p, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var msgs []kafka.Message
	for len(msgs) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read message %d of %d from %s/%d: %v", len(msgs)+1, n, topic, p, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestHeader(t *testing.T) {
	msg := kafka.Message{Headers: []kafka.Header{
		{Key: "message-id", Value: []byte("m-1")},
		{Key: "traceparent", Value: []byte("00-old")},
		{Key: "empty", Value: nil},
		{Key: "traceparent", Value: []byte("00-new")},
	}}
	tests := []struct {
		key    string
		want   string
		wantOK bool
	}{
		{"message-id", "m-1", true},
		{"traceparent", "00-new", true},
		{"empty", "", true},
		{"absent", "", false},
		{"Message-Id", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			got, ok := messaging.Header(msg, tt.key)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Header(%q) = %q, %v; want %q, %v", tt.key, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestPermanent(t *testing.T) {
	if err := messaging.Permanent(nil); err != nil {
		t.Errorf("Permanent(nil) = %v, want nil", err)
	}
	cause := errors.New("bad payload")
	err := fmt.Errorf("decode reserve stock: %w", messaging.Permanent(cause))
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false, want true", err)
	}
	if got, want := err.Error(), "decode reserve stock: bad payload"; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
}
