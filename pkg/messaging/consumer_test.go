package messaging_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/poll"
)

func TestNewConsumerRejectsBadConfig(t *testing.T) {
	valid := func() messaging.ConsumerConfig {
		return messaging.ConsumerConfig{
			Config:          messaging.Config{Brokers: []string{"127.0.0.1:9092"}},
			GroupID:         "inventory",
			Topics:          []string{"inventory.commands"},
			DeadLetterTopic: "inventory.commands.dlq",
		}
	}
	tests := []struct {
		name   string
		change func(*messaging.ConsumerConfig)
	}{
		{"no brokers", func(c *messaging.ConsumerConfig) { c.Brokers = nil }},
		{"no group", func(c *messaging.ConsumerConfig) { c.GroupID = "" }},
		{"no topics", func(c *messaging.ConsumerConfig) { c.Topics = nil }},
		{"empty topic", func(c *messaging.ConsumerConfig) { c.Topics = []string{"a", ""} }},
		{"no dead-letter topic", func(c *messaging.ConsumerConfig) { c.DeadLetterTopic = "" }},
		{"dead-letter topic consumed", func(c *messaging.ConsumerConfig) { c.DeadLetterTopic = c.Topics[0] }},
		{"negative max attempts", func(c *messaging.ConsumerConfig) { c.MaxAttempts = -1 }},
		{"negative backoff", func(c *messaging.ConsumerConfig) { c.MinBackoff = -time.Second }},
		{"min backoff above max", func(c *messaging.ConsumerConfig) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }},
		{"min backoff above default max", func(c *messaging.ConsumerConfig) { c.MinBackoff = time.Hour }},
		{"negative handler timeout", func(c *messaging.ConsumerConfig) { c.HandlerTimeout = -1 }},
		{"session timeout out of range", func(c *messaging.ConsumerConfig) { c.SessionTimeout = 1000 * time.Hour }},
		{"heartbeat not below session", func(c *messaging.ConsumerConfig) { c.HeartbeatInterval = 10 * time.Second }},
		{"negative rebalance timeout", func(c *messaging.ConsumerConfig) { c.RebalanceTimeout = -time.Second }},
		{"negative max wait", func(c *messaging.ConsumerConfig) { c.MaxWait = -time.Second }},
		{"negative concurrency", func(c *messaging.ConsumerConfig) { c.Concurrency = -1 }},
		{"concurrency out of range", func(c *messaging.ConsumerConfig) { c.Concurrency = 100000 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.change(&cfg)
			c, err := messaging.NewConsumer(cfg, func(context.Context, kafka.Message) error { return nil }, nil, nil)
			if err == nil {
				c.Close()
				t.Fatalf("NewConsumer(%+v) = nil error, want one", cfg)
			}
		})
	}

	t.Run("no handler", func(t *testing.T) {
		if _, err := messaging.NewConsumer(valid(), nil, nil, nil); err == nil {
			t.Error("NewConsumer with a nil handler = nil error, want one")
		}
	})
	t.Run("valid with defaults", func(t *testing.T) {
		c, err := messaging.NewConsumer(valid(), func(context.Context, kafka.Message) error { return nil }, nil, nil)
		if err != nil {
			t.Fatalf("NewConsumer(%+v): %v", valid(), err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
}

// TestRunAfterClose: a closed consumer does not join its group.
func TestRunAfterClose(t *testing.T) {
	cfg := consumerConfig(messaging.Config{Brokers: []string{"127.0.0.1:1"}}, "g", "t")
	c, err := messaging.NewConsumer(cfg, func(context.Context, kafka.Message) error { return nil }, testLogger(t), nil)
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Run(t.Context()); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Run after Close = %v, want an error wrapping ErrClosed", err)
	}
}

// TestConsumerCommitsHandledMessages: every message is handled once and
// committed, so a consumer started later in the same group sees only what
// was produced after.
func TestConsumerCommitsHandledMessages(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group, partitions = "orders", "order-service", 3
	topicWithDLQ(ctx, t, kc, topic, partitions)
	first := keyed(5, 0, 6)
	produce(ctx, t, kc, topic, first...)

	var rec recorder
	reg := prometheus.NewRegistry()
	r := runConsumer(t, consumerConfig(kc, group, topic), rec.handler, reg)
	rec.waitFor(ctx, t, len(first))
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}

	if diff := cmp.Diff(sorted(messageValues(first)), sorted(rec.values())); diff != "" {
		t.Errorf("handled values (-want +got):\n%s", diff)
	}
	want := endOffsets(ctx, t, kc, topic, partitions)
	if diff := cmp.Diff(want, committed(ctx, t, kc, group, topic, partitions)); diff != "" {
		t.Errorf("committed offsets, want the end of each partition (-want +got):\n%s", diff)
	}
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"messaging_consumed_total", map[string]string{"topic": topic, "outcome": "ok"}, float64(len(first))},
		{"messaging_consumed_total", map[string]string{"topic": topic, "outcome": "retried"}, 0},
		{"messaging_handler_duration_seconds", map[string]string{"topic": topic}, float64(len(first))},
		{"messaging_dead_lettered_total", map[string]string{"topic": topic}, 0},
	} {
		if got := metric(t, reg, m.name, m.labels); got != m.want {
			t.Errorf("%s%v = %v, want %v", m.name, m.labels, got, m.want)
		}
	}

	later := keyed(3, 6, 1)
	produce(ctx, t, kc, topic, later...)
	var again recorder
	restarted := runConsumer(t, consumerConfig(kc, group, topic), again.handler, nil)
	again.waitFor(ctx, t, len(later))
	if err := restarted.stop(t); err != nil {
		t.Fatalf("Run of the restarted consumer = %v, want nil", err)
	}
	if diff := cmp.Diff(sorted(messageValues(later)), sorted(again.values())); diff != "" {
		t.Errorf("restarted consumer handled (-want +got):\n%s", diff)
	}
}

// TestConsumerRetriesTransientFailure: a message that fails and then
// succeeds is retried in place, before the next message of its partition,
// and committed once.
func TestConsumerRetriesTransientFailure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group = "stock", "inventory-service"
	topicWithDLQ(ctx, t, kc, topic, 1)
	produce(ctx, t, kc, topic, valued("order-1", "a", "flaky", "b")...)

	var calls recorder
	failures := 2
	h := func(_ context.Context, msg kafka.Message) error {
		calls.record(msg)
		if string(msg.Value) == "flaky" && failures > 0 {
			failures-- // the handler is called from one goroutine
			return errors.New("database unavailable")
		}
		return nil
	}
	reg := prometheus.NewRegistry()
	r := runConsumer(t, consumerConfig(kc, group, topic), h, reg)
	calls.waitFor(ctx, t, 5)
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}

	if diff := cmp.Diff([]string{"a", "flaky", "flaky", "flaky", "b"}, calls.values()); diff != "" {
		t.Errorf("handler calls (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[int]int64{0: 3}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[int]int64{0: 0}, endOffsets(ctx, t, kc, topic+".dlq", 1)); diff != "" {
		t.Errorf("dead-letter topic end offsets, want it empty (-want +got):\n%s", diff)
	}
	for _, m := range []struct {
		outcome string
		want    float64
	}{{"ok", 2}, {"retried", 1}, {"dead_lettered", 0}} {
		labels := map[string]string{"topic": topic, "outcome": m.outcome}
		if got := metric(t, reg, "messaging_consumed_total", labels); got != m.want {
			t.Errorf("messaging_consumed_total%v = %v, want %v", labels, got, m.want)
		}
	}
	if got := metric(t, reg, "messaging_handler_duration_seconds", map[string]string{"topic": topic}); got != 5 {
		t.Errorf("handler duration observations = %v, want 5 (one per call)", got)
	}
}

var errBadPayload = errors.New("bad payload")

// TestConsumerDeadLetters: a message that fails permanently, fails
// MaxAttempts times or panics goes to the dead-letter topic with its key,
// value and headers and the dlq-* headers, is committed, and the partition
// moves on to the next message.
func TestConsumerDeadLetters(t *testing.T) {
	t.Parallel()
	kc := startBroker(t)
	const maxAttempts = 3
	tests := []struct {
		name         string
		fail         func(attempt int) error // what the handler does with the poison message
		wantAttempts string
		wantError    string
	}{
		{
			name:         "permanent error",
			fail:         func(int) error { return messaging.Permanent(fmt.Errorf("decode payload: %w", errBadPayload)) },
			wantAttempts: "1",
			wantError:    "decode payload: bad payload",
		},
		{
			name: "permanent after a transient error",
			fail: func(attempt int) error {
				if attempt == 1 {
					return errors.New("timeout")
				}
				return messaging.Permanent(errors.New("order not found"))
			},
			wantAttempts: "2",
			wantError:    "order not found",
		},
		{
			name:         "fails every attempt",
			fail:         func(int) error { return errors.New("stock service unavailable") },
			wantAttempts: "3",
			wantError:    "stock service unavailable",
		},
		{
			name:         "panics",
			fail:         func(int) error { panic("assignment to entry in nil map") },
			wantAttempts: "1",
			wantError:    "handler panicked: assignment to entry in nil map",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			topic, group := fmt.Sprintf("payments-%d", i), fmt.Sprintf("payment-service-%d", i)
			topicWithDLQ(ctx, t, kc, topic, 1)
			msgs := valued("order-7", "before", "poison", "after")
			msgs[1].Headers = []kafka.Header{{Key: "message-id", Value: []byte("m-2")}}
			produce(ctx, t, kc, topic, msgs...)

			var handled recorder
			attempts := 0
			h := func(_ context.Context, msg kafka.Message) error {
				if string(msg.Value) == "poison" {
					attempts++
					return tt.fail(attempts)
				}
				handled.record(msg)
				return nil
			}
			cfg := consumerConfig(kc, group, topic)
			cfg.MaxAttempts = maxAttempts
			reg := prometheus.NewRegistry()
			r := runConsumer(t, cfg, h, reg)
			handled.waitFor(ctx, t, 2)
			if err := r.stop(t); err != nil {
				t.Fatalf("Run after stop = %v, want nil", err)
			}

			if diff := cmp.Diff([]string{"before", "after"}, handled.values()); diff != "" {
				t.Errorf("handled (-want +got):\n%s", diff)
			}
			dead := readAll(ctx, t, kc, cfg.DeadLetterTopic, 1)[0]
			want := kafka.Message{Key: []byte("order-7"), Value: []byte("poison"), Headers: []kafka.Header{
				{Key: "message-id", Value: []byte("m-2")},
				{Key: messaging.HeaderDLQError, Value: []byte(tt.wantError)},
				{Key: messaging.HeaderDLQOriginalTopic, Value: []byte(topic)},
				{Key: messaging.HeaderDLQOriginalPartition, Value: []byte("0")},
				{Key: messaging.HeaderDLQOriginalOffset, Value: []byte("1")},
				{Key: messaging.HeaderDLQAttempts, Value: []byte(tt.wantAttempts)},
			}}
			got := kafka.Message{Key: dead.Key, Value: dead.Value, Headers: dead.Headers}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("dead letter (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[int]int64{0: 1}, endOffsets(ctx, t, kc, cfg.DeadLetterTopic, 1)); diff != "" {
				t.Errorf("dead-letter topic end offsets, want one message (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[int]int64{0: 3}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
				t.Errorf("committed offsets (-want +got):\n%s", diff)
			}
			for _, m := range []struct {
				name   string
				labels map[string]string
			}{
				{"messaging_dead_lettered_total", map[string]string{"topic": topic}},
				{"messaging_consumed_total", map[string]string{"topic": topic, "outcome": "dead_lettered"}},
			} {
				if got := metric(t, reg, m.name, m.labels); got != 1 {
					t.Errorf("%s%v = %v, want 1", m.name, m.labels, got)
				}
			}
		})
	}
}

// failingWriter fails the first failures writes given to it and passes the
// others to next. At each write it records the committed offsets of a
// group, to show what was committed while the dead-letter write failed.
type failingWriter struct {
	next      *messaging.Writer
	committed func() (map[int]int64, error)

	mu       sync.Mutex
	failures int
	calls    int
	seen     []map[int]int64 // committed offsets at each failed write
	errs     []error         // from reading them
}

func (w *failingWriter) WriteMessages(ctx context.Context, msgs ...kafka.Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.calls <= w.failures {
		offsets, err := w.committed()
		w.seen = append(w.seen, offsets)
		if err != nil {
			w.errs = append(w.errs, err)
		}
		return errors.New("not enough replicas")
	}
	return w.next.WriteMessages(ctx, msgs...)
}

func (w *failingWriter) Close() error { return w.next.Close() }

func (w *failingWriter) stats() (calls int, seen []map[int]int64, errs []error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.calls, slices.Clone(w.seen), slices.Clone(w.errs)
}

// TestDeadLetterWriteFailureHoldsCommit: while the dead-letter write fails
// the message is not committed; the write is retried, and a consumer stopped
// meanwhile leaves the message to be delivered again.
func TestDeadLetterWriteFailureHoldsCommit(t *testing.T) {
	t.Parallel()
	kc := startBroker(t)
	poison := func(_ context.Context, msg kafka.Message) error {
		if string(msg.Value) == "poison" {
			return messaging.Permanent(errBadPayload)
		}
		return nil
	}

	t.Run("retried until written", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		const topic, group = "refunds", "payment-service"
		topicWithDLQ(ctx, t, kc, topic, 1)
		produce(ctx, t, kc, topic, valued("order-1", "before", "poison")...)

		cfg := consumerConfig(kc, group, topic)
		w := &failingWriter{
			next:      messaging.NewWriter(kc),
			committed: func() (map[int]int64, error) { return committedOffsets(ctx, kc, group, topic, 1) },
			failures:  3,
		}
		c := newConsumer(t, cfg, poison, nil)
		if err := c.SetDeadLetterWriter(w); err != nil {
			t.Fatalf("SetDeadLetterWriter: %v", err)
		}
		r := run(t, c)
		poll.Until(ctx, t, "poison committed", func() bool { return committed(ctx, t, kc, group, topic, 1)[0] == 2 })
		if err := r.stop(t); err != nil {
			t.Fatalf("Run after stop = %v, want nil", err)
		}

		calls, seen, errs := w.stats()
		if len(errs) > 0 {
			t.Fatalf("read committed offsets: %v", errs)
		}
		if calls != 4 {
			t.Errorf("dead-letter writes = %d, want 4 (3 failed, then 1)", calls)
		}
		want := []map[int]int64{{0: 1}, {0: 1}, {0: 1}} // "before" only
		if diff := cmp.Diff(want, seen); diff != "" {
			t.Errorf("committed offsets during failed dead-letter writes (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"poison"}, messageValues(readAll(ctx, t, kc, cfg.DeadLetterTopic, 1))); diff != "" {
			t.Errorf("dead letters (-want +got):\n%s", diff)
		}
	})

	t.Run("stopped while failing", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		defer cancel()
		const topic, group = "charges", "payment-service"
		topicWithDLQ(ctx, t, kc, topic, 1)
		produce(ctx, t, kc, topic, valued("order-1", "before", "poison")...)

		cfg := consumerConfig(kc, group, topic)
		w := &failingWriter{
			next:      messaging.NewWriter(kc),
			committed: func() (map[int]int64, error) { return nil, nil },
			failures:  1 << 30,
		}
		c := newConsumer(t, cfg, poison, nil)
		if err := c.SetDeadLetterWriter(w); err != nil {
			t.Fatalf("SetDeadLetterWriter: %v", err)
		}
		r := run(t, c)
		poll.Until(ctx, t, "a failed dead-letter write", func() bool { calls, _, _ := w.stats(); return calls > 0 })
		if err := r.stop(t); err == nil || errors.Is(err, messaging.ErrClosed) {
			t.Errorf("Run stopped while the dead-letter write fails = %v, want an error that is not ErrClosed", err)
		}
		if diff := cmp.Diff(map[int]int64{0: 1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
			t.Errorf("committed offsets, want poison uncommitted (-want +got):\n%s", diff)
		}

		var again recorder
		next := runConsumer(t, cfg, func(ctx context.Context, msg kafka.Message) error {
			again.record(msg)
			return poison(ctx, msg)
		}, nil)
		again.waitFor(ctx, t, 1)
		poll.Until(ctx, t, "poison committed", func() bool { return committed(ctx, t, kc, group, topic, 1)[0] == 2 })
		if err := next.stop(t); err != nil {
			t.Fatalf("Run of the next consumer = %v, want nil", err)
		}
		if diff := cmp.Diff([]string{"poison"}, again.values()); diff != "" {
			t.Errorf("next consumer handled (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"poison"}, messageValues(readAll(ctx, t, kc, cfg.DeadLetterTopic, 1))); diff != "" {
			t.Errorf("dead letters (-want +got):\n%s", diff)
		}
	})
}

// TestConsumerStopFinishesMessageInHand: stopping Run while the handler runs
// does not cancel the handler's context; the message is committed, Run
// returns nil, and the group's next consumer does not see it again.
func TestConsumerStopFinishesMessageInHand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group = "saga.replies", "order-service"
	topicWithDLQ(ctx, t, kc, topic, 1)
	produce(ctx, t, kc, topic, valued("order-1", "a")...)

	started, release := make(chan struct{}), make(chan struct{})
	handlerErr := make(chan error, 1)
	h := func(ctx context.Context, _ kafka.Message) error {
		close(started)
		<-release
		handlerErr <- ctx.Err()
		return nil
	}
	r := runConsumer(t, consumerConfig(kc, group, topic), h, nil)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("handler not called")
	}
	r.cancel()
	close(release)
	if err := r.wait(t); err != nil {
		t.Fatalf("Run stopped during a handler call = %v, want nil", err)
	}
	if err := <-handlerErr; err != nil {
		t.Errorf("handler context after the stop: %v, want it live", err)
	}
	if diff := cmp.Diff(map[int]int64{0: 1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}

	produce(ctx, t, kc, topic, valued("order-1", "b")...)
	var next recorder
	nr := runConsumer(t, consumerConfig(kc, group, topic), next.handler, nil)
	next.waitFor(ctx, t, 1)
	if err := nr.stop(t); err != nil {
		t.Fatalf("Run of the next consumer = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"b"}, next.values()); diff != "" {
		t.Errorf("next consumer handled (-want +got):\n%s", diff)
	}
}

// TestConsumerStopBetweenAttempts: a stop or a Close while a failed
// message waits for its next attempt ends Run at once, without committing the
// message; the group's next consumer handles it.
func TestConsumerStopBetweenAttempts(t *testing.T) {
	t.Parallel()
	kc := startBroker(t)
	tests := []struct {
		name    string
		stop    func(*testing.T, *running)
		wantErr error
	}{
		{"context cancelled", func(_ *testing.T, r *running) { r.cancel() }, nil},
		{"closed", func(t *testing.T, r *running) {
			if err := r.consumer.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}, messaging.ErrClosed},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			topic, group := fmt.Sprintf("stock.commands-%d", i), fmt.Sprintf("inventory-service-%d", i)
			topicWithDLQ(ctx, t, kc, topic, 1)
			produce(ctx, t, kc, topic, valued("order-1", "a")...)

			var calls recorder
			cfg := consumerConfig(kc, group, topic)
			cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour // the retry would outlast the test
			r := runConsumer(t, cfg, func(_ context.Context, msg kafka.Message) error {
				calls.record(msg)
				return errors.New("database unavailable")
			}, nil)
			calls.waitFor(ctx, t, 1)
			tt.stop(t, r)
			if err := r.wait(t); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Run stopped between attempts = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff([]string{"a"}, calls.values()); diff != "" {
				t.Errorf("handler calls (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[int]int64{0: -1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
				t.Errorf("committed offsets, want none (-want +got):\n%s", diff)
			}

			var next recorder
			nr := runConsumer(t, consumerConfig(kc, group, topic), next.handler, nil)
			next.waitFor(ctx, t, 1)
			if err := nr.stop(t); err != nil {
				t.Fatalf("Run of the next consumer = %v, want nil", err)
			}
			if diff := cmp.Diff([]string{"a"}, next.values()); diff != "" {
				t.Errorf("next consumer handled (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConsumerCrashRedelivers: a consumer that goes away after handling a
// message but before committing it (Close while the handler runs, as a
// crash) leaves it to be delivered again: the handler sees it twice.
func TestConsumerCrashRedelivers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group = "payment.commands", "payment-service"
	topicWithDLQ(ctx, t, kc, topic, 1)
	produce(ctx, t, kc, topic, valued("order-1", "charge")...)

	var deliveries recorder
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h := func(_ context.Context, msg kafka.Message) error {
		deliveries.record(msg)
		once.Do(func() {
			close(started)
			<-release
		})
		return nil
	}
	crashed := runConsumer(t, consumerConfig(kc, group, topic), h, nil)
	select {
	case <-started:
	case <-ctx.Done():
		t.Fatal("handler not called")
	}
	if err := crashed.consumer.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	close(release)
	if err := crashed.wait(t); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Run of the closed consumer = %v, want an error wrapping ErrClosed", err)
	}
	if diff := cmp.Diff(map[int]int64{0: -1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
		t.Errorf("committed offsets, want none (-want +got):\n%s", diff)
	}

	next := runConsumer(t, consumerConfig(kc, group, topic), h, nil)
	deliveries.waitFor(ctx, t, 2)
	if err := next.stop(t); err != nil {
		t.Fatalf("Run of the next consumer = %v, want nil", err)
	}
	got := deliveries.deliveries()
	if diff := cmp.Diff(got[0], got[1]); diff != "" {
		t.Errorf("the redelivery differs from the first delivery (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(map[int]int64{0: 1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
		t.Errorf("committed offsets after the redelivery (-want +got):\n%s", diff)
	}
}

// TestAfterHandleCrashRedelivers: a crash injected by the AfterHandle hook,
// after the handler succeeded and before the commit, leaves the message
// uncommitted, so the next member of the group handles it again: the
// duplicate delivery the chaos harness relies on.
func TestAfterHandleCrashRedelivers(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group = "inventory.commands", "inventory-service"
	topicWithDLQ(ctx, t, kc, topic, 1)
	produce(ctx, t, kc, topic, valued("order-1", "reserve")...)

	var handled recorder
	cfg := consumerConfig(kc, group, topic)
	var c *messaging.Consumer // set before Run starts, so before the hook runs
	hooked := make(chan kafka.Message, 1)
	cfg.AfterHandle = func(msg kafka.Message) {
		hooked <- msg
		_ = c.Close() // what os.Exit does to the commit that follows
	}
	c = newConsumer(t, cfg, handled.handler, nil)
	crashed := run(t, c)
	if err := crashed.wait(t); !errors.Is(err, messaging.ErrClosed) {
		t.Errorf("Run of the consumer closed in AfterHandle = %v, want an error wrapping ErrClosed", err)
	}
	if got := (<-hooked).Offset; got != 0 {
		t.Errorf("AfterHandle saw offset %d, want 0", got)
	}
	if n := len(handled.values()); n != 1 {
		t.Errorf("the handler ran %d times before AfterHandle, want 1", n)
	}
	if diff := cmp.Diff(map[int]int64{0: -1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
		t.Errorf("committed offsets, want none (-want +got):\n%s", diff)
	}

	next := runConsumer(t, consumerConfig(kc, group, topic), handled.handler, nil)
	handled.waitFor(ctx, t, 2)
	if err := next.stop(t); err != nil {
		t.Fatalf("Run of the next consumer = %v, want nil", err)
	}
	if diff := cmp.Diff([]string{"reserve", "reserve"}, handled.values()); diff != "" {
		t.Errorf("handled values, want the message twice (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[int]int64{0: 1}, committed(ctx, t, kc, group, topic, 1)); diff != "" {
		t.Errorf("committed offsets after the redelivery (-want +got):\n%s", diff)
	}
}

// TestConsumerKeepsPartitionOrderAcrossRetries: with failures retried, each
// key's messages are still handled successfully in the order produced, each
// once.
func TestConsumerKeepsPartitionOrderAcrossRetries(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group, partitions = "inventory.events", "order-service", 3
	topicWithDLQ(ctx, t, kc, topic, partitions)
	msgs := keyed(5, 0, 6)
	produce(ctx, t, kc, topic, msgs...)

	var handled recorder
	failed := make(map[string]bool) // the handler is called from one goroutine
	h := func(_ context.Context, msg kafka.Message) error {
		// Every other message of a key fails at its first attempt.
		if sequenceOf(msg)%2 == 0 && !failed[string(msg.Value)] {
			failed[string(msg.Value)] = true
			return errors.New("lock timeout")
		}
		handled.record(msg)
		return nil
	}
	reg := prometheus.NewRegistry()
	r := runConsumer(t, consumerConfig(kc, group, topic), h, reg)
	handled.waitFor(ctx, t, len(msgs))
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}

	if diff := cmp.Diff(sequences(t, messageValues(msgs)), sequences(t, handled.values())); diff != "" {
		t.Errorf("per-key order of handled messages (-want +got):\n%s", diff)
	}
	if got, want := metric(t, reg, "messaging_consumed_total", map[string]string{"topic": topic, "outcome": "retried"}), float64(len(msgs)/2); got != want {
		t.Errorf("retried messages = %v, want %v", got, want)
	}
}

// sequenceOf returns the sequence number of a message made by keyed.
func sequenceOf(msg kafka.Message) int {
	_, seq, _ := strings.Cut(string(msg.Value), "/")
	n, _ := strconv.Atoi(seq)
	return n
}

// TestConsumersInOneGroupSplitPartitions: two members of a group own
// disjoint partitions and together handle every message once, in per-key
// order.
func TestConsumersInOneGroupSplitPartitions(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group, partitions = "payment.events", "order-service", 4
	topicWithDLQ(ctx, t, kc, topic, partitions)

	reg := prometheus.NewRegistry() // shared, as by two consumers of one process
	members := map[string]*recorder{"a": {}, "b": {}}
	var runs []*running
	for _, rec := range members {
		runs = append(runs, runConsumer(t, consumerConfig(kc, group, topic), rec.handler, reg))
	}
	waitStable(ctx, t, kc, group, len(members))
	msgs := keyed(8, 0, 5)
	produce(ctx, t, kc, topic, msgs...)

	poll.Until(ctx, t, "every message handled", func() bool {
		return len(members["a"].deliveries())+len(members["b"].deliveries()) >= len(msgs)
	})
	for _, r := range runs {
		if err := r.stop(t); err != nil {
			t.Fatalf("Run after stop = %v, want nil", err)
		}
	}

	var all []string
	owners := make(map[int][]string)
	for name, rec := range members {
		if len(rec.deliveries()) == 0 {
			t.Errorf("member %s handled nothing", name)
		}
		for _, d := range rec.deliveries() {
			all = append(all, d.Value)
			if !slices.Contains(owners[d.Partition], name) {
				owners[d.Partition] = append(owners[d.Partition], name)
			}
		}
		for key, seqs := range sequences(t, rec.values()) {
			if !slices.IsSorted(seqs) {
				t.Errorf("member %s handled %s in order %v, want ascending", name, key, seqs)
			}
		}
	}
	if diff := cmp.Diff(sorted(messageValues(msgs)), sorted(all)); diff != "" {
		t.Errorf("handled by the group (-want +got):\n%s", diff)
	}
	for p, names := range owners {
		if len(names) != 1 {
			t.Errorf("partition %d handled by members %v, want one", p, names)
		}
	}
	if got := metric(t, reg, "messaging_consumed_total", map[string]string{"topic": topic, "outcome": "ok"}); got != float64(len(msgs)) {
		t.Errorf("consumed messages in the shared registry = %v, want %d", got, len(msgs))
	}
}

// sorted returns a sorted copy of s.
func sorted(s []string) []string {
	return slices.Sorted(slices.Values(s))
}

// TestConsumerHandlesPartitionsConcurrently: with Concurrency above 1,
// messages of different partitions are handled at the same time, while each
// key's messages are still handled in order, each once, and all committed.
func TestConsumerHandlesPartitionsConcurrently(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group, partitions = "checkout.replies", "order-service", 4
	topicWithDLQ(ctx, t, kc, topic, partitions)
	msgs := keyed(8, 0, 5)
	produce(ctx, t, kc, topic, msgs...)

	// The first calls wait until two calls are in progress at once, which
	// never happens if the consumer handles one message at a time.
	var (
		mu       sync.Mutex
		inFlight int
		overlap  sync.Once
	)
	overlapped := make(chan struct{})
	var handled recorder
	h := func(ctx context.Context, msg kafka.Message) error {
		mu.Lock()
		inFlight++
		if inFlight == 2 {
			overlap.Do(func() { close(overlapped) })
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		select {
		case <-overlapped:
		case <-ctx.Done():
			return ctx.Err()
		}
		handled.record(msg)
		return nil
	}
	cfg := consumerConfig(kc, group, topic)
	cfg.Concurrency = partitions
	r := runConsumer(t, cfg, h, nil)
	got := handled.waitFor(ctx, t, len(msgs))
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}

	if diff := cmp.Diff(sequences(t, messageValues(msgs)), sequences(t, handled.values())); diff != "" {
		t.Errorf("per-key order of handled messages (-want +got):\n%s", diff)
	}
	ends := make(map[int]int64) // per partition, the offset after the last message
	for _, d := range got {
		ends[d.Partition] = max(ends[d.Partition], d.Offset+1)
	}
	if len(ends) < 2 {
		t.Fatalf("messages landed in partitions %v, want at least two", ends)
	}
	for p := range partitions {
		if _, ok := ends[p]; !ok {
			ends[p] = -1 // no message, nothing committed
		}
	}
	if diff := cmp.Diff(ends, committed(ctx, t, kc, group, topic, partitions)); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}
}

// TestConsumerStopFinishesEveryMessageInHand: with several workers, a stop
// lets each message in hand finish and commits it; Run returns nil.
func TestConsumerStopFinishesEveryMessageInHand(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group, partitions = "checkout.payment.commands", "payment-service", 2
	topicWithDLQ(ctx, t, kc, topic, partitions)
	msgs := keyed(8, 0, 1)
	produce(ctx, t, kc, topic, msgs...)

	started, release := make(chan kafka.Message, len(msgs)), make(chan struct{})
	h := func(ctx context.Context, msg kafka.Message) error {
		started <- msg
		<-release
		return ctx.Err()
	}
	cfg := consumerConfig(kc, group, topic)
	cfg.Concurrency = partitions
	r := runConsumer(t, cfg, h, nil)
	inHand := make(map[int]int64) // partition -> offset of the message in hand
	for len(inHand) < partitions {
		select {
		case msg := <-started:
			inHand[msg.Partition] = msg.Offset
		case <-ctx.Done():
			t.Fatalf("handler calls in progress: %v, want one per partition", inHand)
		}
	}
	r.cancel()
	close(release)
	if err := r.wait(t); err != nil {
		t.Fatalf("Run stopped during handler calls = %v, want nil", err)
	}
	want := make(map[int]int64)
	for p, offset := range inHand {
		want[p] = offset + 1
	}
	if diff := cmp.Diff(want, committed(ctx, t, kc, group, topic, partitions)); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}
}

// TestConsumerLag: while the handler holds the first of four messages of a
// partition, the lag gauge shows the messages behind it; once all are
// handled, none.
func TestConsumerLag(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	kc := startBroker(t)
	const topic, group = "lagging", "lag-service"
	topicWithDLQ(ctx, t, kc, topic, 1)
	produce(ctx, t, kc, topic, valued("order-1", "a", "b", "c", "d")...)

	release := make(chan struct{})
	var handled recorder
	h := func(ctx context.Context, msg kafka.Message) error {
		if string(msg.Value) == "a" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		handled.record(msg)
		return nil
	}
	reg := prometheus.NewRegistry()
	r := runConsumer(t, consumerConfig(kc, group, topic), h, reg)
	lag := func() float64 {
		return metric(t, reg, "messaging_consumer_lag_messages", map[string]string{"topic": topic, "partition": "0"})
	}
	poll.Until(ctx, t, "lag 3 behind the held first message", func() bool { return lag() == 3 })
	close(release)
	handled.waitFor(ctx, t, 4)
	if got := lag(); got != 0 {
		t.Errorf("lag after every message was handled = %v, want 0", got)
	}
	if err := r.stop(t); err != nil {
		t.Fatalf("Run after stop = %v, want nil", err)
	}
}
