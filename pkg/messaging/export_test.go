package messaging

import (
	"context"

	"github.com/segmentio/kafka-go"
)

// SetDeadLetterWriter makes c write dead letters with w, which c then owns
// and closes, so a test can make those writes fail. Call it before Run.
func (c *Consumer) SetDeadLetterWriter(w interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}) error {
	old := c.dlq
	c.dlq = w
	return old.Close()
}
