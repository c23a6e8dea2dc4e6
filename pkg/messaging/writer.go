package messaging

import (
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// Writer is a kafka-go Writer that owns its connections: [Writer.Close]
// flushes pending messages and then closes them. Create one with [NewWriter].
//
// It is a *kafka.Writer rather than a type of its own so that code written
// against kafka-go uses it as is. The wrapper exists because a kafka.Writer
// given its own Transport (needed to send the ClientID) does not close that
// transport's connections and background metadata refresh on Close.
//
// Its methods are safe for concurrent use, as kafka.Writer's are.
type Writer struct {
	*kafka.Writer
	transport *kafka.Transport
}

// NewWriter returns a Writer for any topic: each message names its topic in
// kafka.Message.Topic. Messages are acknowledged by all in-sync replicas
// before WriteMessages returns (kafka-go's default is no acknowledgement at
// all), spread over partitions by a hash of their key so that one key keeps
// its order, and sent after at most a few milliseconds of batching (the
// default holds a partial batch for a second). A missing topic is created
// automatically; see [EnsureTopics] for why that should not be relied on.
//
// Nothing is dialled before the first write. The caller must Close it.
func NewWriter(cfg Config) *Writer {
	transport := &kafka.Transport{ClientID: cfg.ClientID}
	return &Writer{
		Writer: &kafka.Writer{
			Addr:                   kafka.TCP(cfg.Brokers...),
			Balancer:               &kafka.Hash{},
			RequiredAcks:           kafka.RequireAll,
			BatchTimeout:           5 * time.Millisecond,
			AllowAutoTopicCreation: true,
			Transport:              transport,
		},
		transport: transport,
	}
}

// Close flushes the messages being written, waits for their writes to end
// and closes the writer's connections. Writes after Close fail.
func (w *Writer) Close() error {
	err := w.Writer.Close()
	w.transport.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("close kafka writer: %w", err)
	}
	return nil
}
