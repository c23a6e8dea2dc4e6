package messaging

import (
	"slices"
	"strconv"

	"github.com/segmentio/kafka-go"
)

// Headers the [Consumer] adds to a message it writes to the dead-letter topic,
// after the original message's own headers. Their values are text; numbers
// are in decimal.
const (
	// HeaderDLQError is the text of the handler's last error.
	HeaderDLQError = "dlq-error"
	// HeaderDLQOriginalTopic is the topic the message was consumed from.
	HeaderDLQOriginalTopic = "dlq-original-topic"
	// HeaderDLQOriginalPartition is the partition it was consumed from.
	HeaderDLQOriginalPartition = "dlq-original-partition"
	// HeaderDLQOriginalOffset is its offset in that partition.
	HeaderDLQOriginalOffset = "dlq-original-offset"
	// HeaderDLQAttempts is how many times the handler was called with it.
	HeaderDLQAttempts = "dlq-attempts"
)

// Header returns the value of the last header of msg named key, and whether
// there is one. The last one wins because Kafka allows a key to repeat and a
// header appended later is the more recent fact (Kafka's Java client reads
// headers the same way with lastHeader).
func Header(msg kafka.Message, key string) (string, bool) {
	for i := len(msg.Headers) - 1; i >= 0; i-- {
		if msg.Headers[i].Key == key {
			return string(msg.Headers[i].Value), true
		}
	}
	return "", false
}

// Headers returns msg's headers as a map, the last of a repeated key
// winning, as with Header: for code that reads several of them (the saga's
// correlation headers).
func Headers(msg kafka.Message) map[string]string {
	h := make(map[string]string, len(msg.Headers))
	for _, kv := range msg.Headers {
		h[kv.Key] = string(kv.Value)
	}
	return h
}

// deadLetter returns the message written to topic for msg, which failed
// attempts times, the last with cause: msg's key, value and headers, with
// the dead-letter headers of an earlier trip through a dead-letter topic
// replaced by this one's.
func deadLetter(topic string, msg kafka.Message, attempts int, cause error) kafka.Message {
	headers := slices.DeleteFunc(slices.Clone(msg.Headers), func(h kafka.Header) bool {
		switch h.Key {
		case HeaderDLQError, HeaderDLQOriginalTopic, HeaderDLQOriginalPartition,
			HeaderDLQOriginalOffset, HeaderDLQAttempts:
			return true
		}
		return false
	})
	headers = append(headers,
		kafka.Header{Key: HeaderDLQError, Value: []byte(cause.Error())},
		kafka.Header{Key: HeaderDLQOriginalTopic, Value: []byte(msg.Topic)},
		kafka.Header{Key: HeaderDLQOriginalPartition, Value: strconv.AppendInt(nil, int64(msg.Partition), 10)},
		kafka.Header{Key: HeaderDLQOriginalOffset, Value: strconv.AppendInt(nil, msg.Offset, 10)},
		kafka.Header{Key: HeaderDLQAttempts, Value: strconv.AppendInt(nil, int64(attempts), 10)},
	)
	return kafka.Message{Topic: topic, Key: msg.Key, Value: msg.Value, Headers: headers}
}
