package invariants

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/microshop/microshop/pkg/kafkatest"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// TestConsumerLagAndDeadLetters reads lag and dead letters from a real
// Kafka-protocol broker: a command not committed is lag until its group
// commits it, and a message in a dead-letter topic is counted and reported.
func TestConsumerLagAndDeadLetters(t *testing.T) {
	ctx := t.Context()
	var topics []string
	for _, topic := range consumerGroups {
		topics = append(topics, topic, checkoutv1.DLQTopic(topic))
	}
	broker := kafkatest.Start(t, kfake.SeedTopics(checkoutv1.TopicPartitions, topics...))
	kc := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second}
	w := &kafka.Writer{Addr: kafka.TCP(broker), RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{}}
	t.Cleanup(func() { w.Close() })
	err := w.WriteMessages(ctx,
		kafka.Message{Topic: checkoutv1.TopicInventoryCommands, Key: []byte("o1"), Value: []byte("reserve")},
		kafka.Message{Topic: checkoutv1.TopicInventoryCommands, Key: []byte("o1"), Value: []byte("commit")},
		kafka.Message{Topic: checkoutv1.DLQTopic(checkoutv1.TopicReplies), Key: []byte("o2"), Value: []byte("poison")},
	)
	if err != nil {
		t.Fatal(err)
	}

	lag, err := consumerLag(ctx, kc)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"inventory": 2, "payment": 0, "order": 0}, lag); diff != "" {
		t.Errorf("lag before the commit (-want +got):\n%s", diff)
	}

	// The inventory group commits both: "o1" hashes to one partition, whose end offset is 2.
	ends, err := endOffsets(ctx, kc, checkoutv1.TopicInventoryCommands)
	if err != nil {
		t.Fatal(err)
	}
	var commits []kafka.OffsetCommit
	for p, end := range ends {
		if end > 0 {
			commits = append(commits, kafka.OffsetCommit{Partition: p, Offset: end})
		}
	}
	resp, err := kc.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: "inventory", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{checkoutv1.TopicInventoryCommands: commits}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range resp.Topics {
		for _, p := range ps {
			if p.Error != nil {
				t.Fatalf("commit partition %d: %v", p.Partition, p.Error)
			}
		}
	}
	if lag, err = consumerLag(ctx, kc); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"inventory": 0, "payment": 0, "order": 0}, lag); diff != "" {
		t.Errorf("lag after the commit (-want +got):\n%s", diff)
	}

	s := &Snapshot{}
	if err := readDeadLetters(ctx, kc, s); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{checkoutv1.DLQTopic(checkoutv1.TopicInventoryCommands): 0,
		checkoutv1.DLQTopic(checkoutv1.TopicPaymentCommands): 0, checkoutv1.DLQTopic(checkoutv1.TopicReplies): 1}
	if diff := cmp.Diff(want, s.deadLetters); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	r := Check(GroundTruth{}, s)
	if diff := cmp.Diff([]string{"stuck: checkout.replies.dlq holds 1 dead-lettered messages"}, r.Violations); diff != "" {
		t.Errorf("violations (-want +got):\n%s", diff)
	}
}
