// Package messaging is how a microshop service talks to Kafka with
// segmentio/kafka-go: the client configuration and its readiness check
// ([Config.Ping]), topic creation ([EnsureTopics], and at start-up
// [EnsureTopicsWithRetry]), a producer with safe defaults ([NewWriter]) and
// the consumer loop every saga participant and the orchestrator run
// ([Consumer]).
//
// The consumer gives at-least-once delivery in partition order: a message is
// committed only after its handler succeeded or it was written to the
// dead-letter topic, and the next message of a partition is not handled
// before that. Handlers must therefore be idempotent (the saga barrier makes
// them so): a crash, a rebalance or a failed commit delivers a message again.
package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/segmentio/kafka-go"
)

// Config is a service's Kafka client configuration.
type Config struct {
	// Brokers are the bootstrap broker addresses (host:port); at least one.
	Brokers []string
	// ClientID identifies the service to the brokers (in their logs and quotas).
	ClientID string
}

// Ping connects to the first reachable bootstrap broker and asks for its
// supported API versions, proving it speaks Kafka. It is the readiness check.
func (c Config) Ping(ctx context.Context) error {
	if len(c.Brokers) == 0 {
		return errors.New("ping kafka: no brokers configured")
	}
	d := &kafka.Dialer{ClientID: c.ClientID}
	var errs []error
	for _, addr := range c.Brokers {
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deadline, ok := ctx.Deadline(); ok {
			_ = conn.SetDeadline(deadline)
		}
		_, err = conn.ApiVersions()
		conn.Close()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
	}
	return fmt.Errorf("ping kafka: %w", errors.Join(errs...))
}

// EnsureTopics creates each of topics that does not exist yet, with
// partitions partitions and the cluster's default replication factor. A topic
// that exists is left as it is, whatever its partition count.
//
// Services call it at start-up for the topics they produce to and consume
// from, including dead-letter topics, rather than rely on automatic creation:
// the partition count is then chosen, not a broker default, and the embedded
// broker (kfake) keeps explicitly created topics across a crash, while it
// loses automatically created ones with all their records.
func EnsureTopics(ctx context.Context, cfg Config, partitions int, topics ...string) error {
	if err := checkTopicsRequest(cfg, partitions); err != nil {
		return err
	}
	if len(topics) == 0 {
		return nil
	}
	transport := &kafka.Transport{ClientID: cfg.ClientID}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport}

	req := &kafka.CreateTopicsRequest{}
	for _, topic := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{
			Topic:             topic,
			NumPartitions:     partitions,
			ReplicationFactor: -1, // the broker's default.replication.factor
		})
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("ensure topics: %w", err)
	}
	var errs []error
	for _, topic := range topics {
		if err := resp.Errors[topic]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			errs = append(errs, fmt.Errorf("create topic %s: %w", topic, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("ensure topics: %w", errors.Join(errs...))
	}
	return nil
}

// EnsureTopicsWithRetry is [EnsureTopics] tried again every second, each
// attempt bounded by 10 seconds, until it succeeds or ctx ends; each failed
// attempt is logged to log as a warning. It is what a service calls at
// start-up, when Kafka may not be reachable yet: started at the same time,
// or restarting. A failure that trying again cannot mend is returned at
// once: a configuration EnsureTopics refuses, or topics the broker refuses
// for good, such as an invalid name.
func EnsureTopicsWithRetry(ctx context.Context, cfg Config, partitions int, log *slog.Logger, topics ...string) error {
	if err := checkTopicsRequest(cfg, partitions); err != nil {
		return err
	}
	var last error
	_, err := backoff.Retry(ctx, func() (struct{}, error) {
		attemptCtx, cancel := context.WithTimeout(ctx, ensureTopicsAttemptTimeout)
		defer cancel()
		last = EnsureTopics(attemptCtx, cfg, partitions, topics...)
		if refusedForGood(last) {
			return struct{}{}, backoff.Permanent(last)
		}
		return struct{}{}, last
	},
		backoff.WithBackOff(backoff.NewConstantBackOff(ensureTopicsRetryInterval)),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, wait time.Duration) {
			log.Warn("create kafka topics failed; will retry", slog.Any("error", err), slog.String("retry_in", wait.String()))
		}),
	)
	if err != nil && ctx.Err() != nil && last != nil {
		return fmt.Errorf("%w; gave up: %w", last, context.Cause(ctx))
	}
	return err
}

// Pacing of EnsureTopicsWithRetry: a broker that takes a connection and
// never answers costs one attempt, not the whole start-up.
const (
	ensureTopicsAttemptTimeout = 10 * time.Second
	ensureTopicsRetryInterval  = time.Second
)

// refusedForGood reports whether the broker refused the topics in a way that
// will not change by itself: a bad name, partition count or configuration,
// or no permission. Anything else, such as a broker that cannot be reached
// (which kafka-go reports as BrokerNotAvailable) or a cluster that has fewer
// brokers than the replication factor yet, may pass on a later attempt.
func refusedForGood(err error) bool {
	var kafkaErr kafka.Error
	if !errors.As(err, &kafkaErr) {
		return false
	}
	switch kafkaErr {
	case kafka.InvalidTopic, kafka.InvalidPartitionNumber, kafka.InvalidConfiguration, kafka.InvalidRequest,
		kafka.PolicyViolation, kafka.TopicAuthorizationFailed, kafka.ClusterAuthorizationFailed:
		return true
	}
	return false
}

// checkTopicsRequest refuses what no broker would accept.
func checkTopicsRequest(cfg Config, partitions int) error {
	if len(cfg.Brokers) == 0 {
		return errors.New("ensure topics: no brokers configured")
	}
	if partitions < 1 {
		return fmt.Errorf("ensure topics: %d partitions, want at least 1", partitions)
	}
	return nil
}
