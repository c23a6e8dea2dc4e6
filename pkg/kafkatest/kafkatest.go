// Package kafkatest starts an in-process Kafka-protocol broker for tests.
//
// The broker is franz-go's kfake: it speaks the real wire protocol (produce
// with acks=all, fetch, consumer groups, offset commits, rebalances), so code
// that uses kafka-go can be tested end to end without Docker or an external
// Kafka. Each test gets its own broker, so tests may run in parallel.
//
// Things about kfake that tests run into:
//   - as with Kafka's defaults, a consumer group session shorter than 6s is
//     refused (INVALID_SESSION_TIMEOUT, returned by kafka-go's FetchMessage)
//     unless kfake.GroupMinSessionTimeout lowers the floor;
//   - with kfake.DataDir, a restart reloads topics, records and committed
//     offsets and ignores kfake.SeedTopics, which only seed an empty directory;
//   - a topic created automatically is written to the data dir only when the
//     cluster is closed, so a crash loses it with its records; one created
//     with a CreateTopics request is saved at once.
package kafkatest

import (
	"fmt"
	"net"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DefaultPartitions is the number of partitions of a topic created
// automatically (by a producer or consumer asking for a missing topic). It
// matches the default of the local broker in deploy/local/cmd/broker.
const DefaultPartitions = 3

// Start starts a one-broker kfake cluster listening on a random port of
// 127.0.0.1 and returns its address, "127.0.0.1:PORT", for use as a kafka-go
// bootstrap broker.
//
// Topics are created on first use with [DefaultPartitions] partitions. opts
// are applied after these defaults, so they can override them or add more,
// such as kfake.DataDir to persist the log or kfake.SeedTopics to create
// topics up front. Start fails the test if the cluster cannot start and closes
// the cluster in t.Cleanup; with kfake.DataDir, closing saves the state.
func Start(t testing.TB, opts ...kfake.Opt) string {
	t.Helper()
	defaults := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenLoopback),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(DefaultPartitions),
	}
	c, err := kfake.NewCluster(append(defaults, opts...)...)
	if err != nil {
		t.Fatalf("start kfake cluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// listenLoopback listens on the port kfake asks for (0 for a random one) of
// 127.0.0.1, whatever host kfake names, so a test broker is never reachable
// from another machine.
func listenLoopback(network, address string) (net.Listener, error) {
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("split listen address %q: %w", address, err)
	}
	return net.Listen(network, net.JoinHostPort("127.0.0.1", port))
}
