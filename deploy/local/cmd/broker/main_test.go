package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
)

// testTimeout bounds each test, so a broker that never starts or never
// stops fails the test instead of hanging it.
const testTimeout = 30 * time.Second

// TestRun starts the broker, produces and consumes through it, stops it and
// starts it again on the same data dir: the record and the group's committed
// offset are still there.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	dataDir := filepath.Join(t.TempDir(), "kafka") // run creates it
	args := []string{"-addr", "127.0.0.1:0", "-data-dir", dataDir, "-partitions", "2"}
	const topic, group = "orders", "order-service"
	sent := kafka.Message{Key: []byte("order-1"), Value: []byte("created")}

	first := startRun(ctx, t, args)
	poll.UntilNil(ctx, t, "produce", func() error {
		w := &kafka.Writer{
			Addr:                   kafka.TCP(first.addr),
			Topic:                  topic,
			RequiredAcks:           kafka.RequireAll,
			AllowAutoTopicCreation: true,
			BatchTimeout:           time.Millisecond,
		}
		defer w.Close()
		return w.WriteMessages(ctx, sent)
	})
	r := newGroupReader(t, first.addr, topic, group)
	got, err := r.FetchMessage(ctx)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if err := r.CommitMessages(ctx, got); err != nil {
		t.Fatalf("commit: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close reader: %v", err)
	}
	if err := first.stop(ctx); err != nil {
		t.Fatalf("run returned %v after cancel, want nil", err)
	}
	want := logLine{Msg: "broker listening", Addr: first.addr, DataDir: dataDir, Partitions: 2}
	if diff := cmp.Diff(want, first.listening); diff != "" {
		t.Errorf("listening log line mismatch (-want +got):\n%s", diff)
	}

	second := startRun(ctx, t, args)
	again, err := newGroupReader(t, second.addr, topic, "auditor").FetchMessage(ctx)
	if err != nil {
		t.Fatalf("fetch after restart: %v", err)
	}
	if diff := cmp.Diff(message(got), message(again)); diff != "" {
		t.Errorf("message after restart mismatch (-want +got):\n%s", diff)
	}
	client := &kafka.Client{Addr: kafka.TCP(second.addr)}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		t.Fatalf("fetch metadata: %v", err)
	}
	if len(meta.Topics) != 1 || len(meta.Topics[0].Partitions) != 2 {
		t.Errorf("metadata for %s = %+v, want one topic with the 2 partitions of -partitions", topic, meta.Topics)
	}
	offsets, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{
		GroupID: group,
		Topics:  map[string][]int{topic: {0, 1}},
	})
	if err != nil {
		t.Fatalf("fetch committed offsets: %v", err)
	}
	committed := make(map[int]int64)
	for _, p := range offsets.Topics[topic] {
		committed[p.Partition] = p.CommittedOffset
	}
	wantCommitted := map[int]int64{0: -1, 1: -1, got.Partition: got.Offset + 1}
	if diff := cmp.Diff(wantCommitted, committed); diff != "" {
		t.Errorf("committed offsets after restart mismatch (-want +got):\n%s", diff)
	}
	if err := second.stop(ctx); err != nil {
		t.Fatalf("second run returned %v after cancel, want nil", err)
	}
}

func TestRunHelp(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, noEnv, &stdout); err != nil {
		t.Fatalf("run -h = %v, want nil", err)
	}
	for _, flag := range []string{"-addr", "-data-dir", "-partitions"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("usage does not mention %s:\n%s", flag, stdout.String())
		}
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	t.Chdir(t.TempDir()) // a wrongly accepted case must not create .run/kafka here
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string // in the error
	}{
		{name: "unknown flag", args: []string{"-port", "9092"}, want: "-port"},
		{name: "positional argument", args: []string{"serve"}, want: `unexpected arguments ["serve"]`},
		{name: "addr without port", args: []string{"-addr", "localhost"}, want: "-addr"},
		{name: "addr without host", args: []string{"-addr", ":9092"}, want: "-addr"},
		{name: "addr wildcard", args: []string{"-addr", "0.0.0.0:9092"}, want: "-addr"},
		{name: "addr port out of range", args: []string{"-addr", "127.0.0.1:65536"}, want: "-addr"},
		{name: "addr from env", env: map[string]string{"BROKER_ADDR": "9092"}, want: "BROKER_ADDR"},
		{name: "addr in use", args: []string{"-addr", busy.Addr().String()}, want: "listen on -addr"},
		{name: "advertise wildcard", args: []string{"-addr", "0.0.0.0:9092", "-advertise", "0.0.0.0:9092"}, want: "-advertise"},
		{name: "advertise without port", env: map[string]string{"BROKER_ADVERTISE_ADDR": "broker"}, want: "BROKER_ADVERTISE_ADDR"},
		{name: "partitions zero", args: []string{"-partitions", "0"}, want: "-partitions"},
		{name: "partitions not a number", args: []string{"-partitions", "three"}, want: "-partitions"},
		{name: "data dir under a file", args: []string{"-addr", "127.0.0.1:0", "-data-dir", filepath.Join(file, "kafka")}, want: "-data-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Cancelled, so a configuration wrongly accepted makes run
			// return nil at once instead of serving.
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			getenv := func(key string) string { return tt.env[key] }
			err := run(ctx, tt.args, getenv, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	env := map[string]string{"BROKER_ADDR": "localhost:19092", "BROKER_DATA_DIR": "/var/lib/kafka"}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want config
	}{
		{
			name: "defaults",
			want: config{Addr: "127.0.0.1:9092", DataDir: ".run/kafka", Partitions: 3},
		},
		{
			name: "environment",
			env:  env,
			want: config{Addr: "localhost:19092", DataDir: "/var/lib/kafka", Partitions: 3},
		},
		{
			name: "flags win over environment",
			args: []string{"-addr", "127.0.0.1:0", "-data-dir", "/tmp/k", "-partitions", "1"},
			env:  env,
			want: config{Addr: "127.0.0.1:0", DataDir: "/tmp/k", Partitions: 1},
		},
		{
			name: "wildcard listener advertising a name",
			env:  map[string]string{"BROKER_ADDR": "0.0.0.0:9092", "BROKER_ADVERTISE_ADDR": "broker:9092"},
			want: config{Addr: "0.0.0.0:9092", Advertise: "broker:9092", DataDir: ".run/kafka", Partitions: 3},
		},
		{
			name: "empty data dir keeps state in memory",
			args: []string{"-data-dir="},
			env:  env,
			want: config{Addr: "localhost:19092", DataDir: "", Partitions: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(key string) string { return tt.env[key] }
			got, err := loadConfig(tt.args, getenv, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("loadConfig(%q) error: %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("loadConfig(%q) mismatch (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// runningBroker is run serving in a goroutine.
type runningBroker struct {
	addr      string  // the address it listens on
	listening logLine // its "broker listening" log line
	cancel    context.CancelFunc
	done      chan struct{} // closed when run has returned
	err       error         // what run returned, set before done is closed
}

// startRun starts run with args and waits for its "broker listening" line.
// The broker is stopped in t.Cleanup if the test has not stopped it.
func startRun(ctx context.Context, t *testing.T, args []string) *runningBroker {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	b := &runningBroker{cancel: cancel, done: make(chan struct{})}
	var stdout logtest.Buffer
	go func() {
		b.err = run(runCtx, args, noEnv, &stdout)
		close(b.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-b.done
	})

	poll.UntilNil(ctx, t, "broker listening", func() error {
		select {
		case <-b.done:
			t.Fatalf("run returned %v before listening; output:\n%s", b.err, stdout.String())
		default:
		}
		line, ok := findLog(t, stdout.String(), "broker listening")
		if !ok {
			return errors.New("no listening line yet")
		}
		b.listening = line
		return nil
	})
	b.addr = b.listening.Addr
	return b
}

// stop cancels run and returns its result.
func (b *runningBroker) stop(ctx context.Context) error {
	b.cancel()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logLine is the part of a log line the tests check.
type logLine struct {
	Msg        string `json:"msg"`
	Addr       string `json:"addr"`
	DataDir    string `json:"data_dir"`
	Partitions int    `json:"partitions"`
}

// findLog returns the first JSON log line of out with message msg. It fails
// the test on a line that is not JSON.
func findLog(t *testing.T, out, msg string) (logLine, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var line logLine
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line.Msg == msg {
			return line, true
		}
	}
	return logLine{}, false
}

// newGroupReader returns a consumer-group reader that starts at the oldest
// record, commits synchronously and is closed in t.Cleanup.
func newGroupReader(t *testing.T, addr, topic, group string) *kafka.Reader {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:           []string{addr},
		GroupID:           group,
		Topic:             topic,
		StartOffset:       kafka.FirstOffset,
		MaxWait:           100 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		RebalanceTimeout:  2 * time.Second,
		HeartbeatInterval: 500 * time.Millisecond,
		JoinGroupBackoff:  100 * time.Millisecond,
	})
	t.Cleanup(func() { r.Close() })
	return r
}

// message is the part of a kafka.Message compared across restarts.
func message(m kafka.Message) map[string]any {
	return map[string]any{
		"partition": m.Partition,
		"offset":    m.Offset,
		"key":       string(m.Key),
		"value":     string(m.Value),
	}
}

func noEnv(string) string { return "" }

// TestAdvertise checks that a broker listening on every interface tells
// clients the -advertise address in its metadata, and that its healthcheck
// finds it on the loopback interface.
func TestAdvertise(t *testing.T) {
	port := strings.TrimPrefix(servicetest.FreeAddr(t), "127.0.0.1:")
	args := []string{"-addr", "0.0.0.0:" + port, "-advertise", "localhost:" + port, "-data-dir="}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	wait, cancelWait := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancelWait()
	poll.UntilNil(wait, t, "broker healthcheck", func() error {
		return healthcheck(wait, args, func(string) string { return "" })
	})
	client := &kafka.Client{Addr: kafka.TCP("127.0.0.1:" + port)}
	meta, err := client.Metadata(wait, &kafka.MetadataRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(meta.Brokers) != 1 || meta.Brokers[0].Host != "localhost" || strconv.Itoa(meta.Brokers[0].Port) != port {
		t.Errorf("brokers %+v, want one at localhost:%s", meta.Brokers, port)
	}
}
