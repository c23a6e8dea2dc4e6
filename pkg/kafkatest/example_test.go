package kafkatest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/kafkatest"
)

// exampleT stands in for a test's t, which an Example does not get: it
// runs the cleanups Start registers when the example ends.
type exampleT struct {
	testing.TB
	cleanups []func()
}

func (*exampleT) Helper()                           {}
func (*exampleT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *exampleT) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }

func (t *exampleT) runCleanups() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func ExampleStart() {
	t := &exampleT{} // in a test: the test's own t
	defer t.runCleanups()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	addr := kafkatest.Start(t) // a broker of its own, closed at cleanup
	w := &kafka.Writer{
		Addr: kafka.TCP(addr), Topic: "orders", AllowAutoTopicCreation: true, BatchTimeout: time.Millisecond,
		Balancer: kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }), // all to partition 0
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("o-1"), Value: []byte("created")}); err != nil {
		panic(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: "orders", Partition: 0})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s %s\n", m.Key, m.Value)
	// Output:
	// o-1 created
}
