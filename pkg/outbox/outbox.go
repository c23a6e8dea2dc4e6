// Package outbox publishes a service's Kafka messages exactly when its
// business transactions commit: the transactional outbox.
//
// A service that changes its database and must tell others about it cannot
// do both atomically: Kafka takes no part in the database transaction. So
// [Add] writes the message as a row of the outbox table in the SAME
// transaction as the business change; the row exists if and only if the
// change committed. A [Relay], running in the background, publishes the rows
// to Kafka and marks them sent.
//
// Guarantees:
//
//   - At least once. A row is marked sent only after the broker acknowledged
//     it (acks=all: publish through messaging.NewWriter). A relay that
//     crashes or stops between the two publishes the message again later, so
//     consumers see duplicates and must drop them by the [HeaderMessageID]
//     header or by a barrier in their own transaction.
//   - Per-key order. The messages of one key (the order id) are published in
//     the order of their seq, the order they were added. A round takes the
//     oldest unsent message of each of up to BatchSize keys (the key's head,
//     found among the oldest unsent messages, 4 × BatchSize of them) and the
//     messages that follow it, up to BatchSize messages in all, and
//     publishes them in waves: a key's next message is sent only after the
//     broker acknowledged the one before, and a message that fails holds
//     back the rest of its key until a later round. The Hash balancer of
//     messaging.NewWriter sends a key always to one partition, where
//     consumers read it in that order. A duplicate may come after newer
//     messages; the first publication of every message is in order. (On
//     Postgres seq is taken at insert time: of two transactions adding to one
//     key at the same time, the one with the later seq may commit, and be
//     published, first. Messages of transactions that follow one another are
//     always in order.) A key's backlog drains up to BatchSize messages per
//     round, one database round trip, and one broker round trip per wave.
//   - Several relays. On Postgres every replica may run a Relay: a round
//     locks the heads it takes with FOR UPDATE SKIP LOCKED, and a key's
//     later messages are taken only by the relay that holds its head: to
//     every other relay they are not heads while the head is pending. On
//     SQLite, which ignores FOR UPDATE, run ONE relay per database file; a
//     second would publish more duplicates, though still in order.
//
// Sent rows keep their sent_at for RelayOptions.Retention and are then
// deleted by Run. [Migrate] creates the table, versioned in its own goose
// table apart from the service's migrations.
//
// The relay is written here rather than taken from a library (such as
// watermill's forwarder) because these guarantees, per-key order with several
// relays and correctness on SQLite without row locks, over GORM and kafka-go,
// are the point of the package; retries and metrics come from libraries.
package outbox

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
)

// HeaderMessageID is the Kafka header carrying Message.ID.
const HeaderMessageID = messaging.HeaderMessageID

// MaxMessageBytes bounds the bytes of a message that Add accepts: ID, key,
// headers and payload together. It stays below the 1 MiB that kafka-go
// (Writer.BatchBytes) and Kafka brokers (message.max.bytes) accept by
// default, so that no row can be too large to ever be published and hold back
// its key for good.
const MaxMessageBytes = 1_000_000

// maxTopicLength is Kafka's limit on topic names.
const maxTopicLength = 249

// VersionTable is the goose table that records the outbox migrations applied.
const VersionTable = "outbox_goose_db_version"

var (
	// ErrInvalidMessage is returned (wrapped, with the reason) by Add for a
	// message that could never be published.
	ErrInvalidMessage = errors.New("invalid outbox message")
	// ErrNoTransaction is returned by Add when tx is not a transaction: the
	// row would then commit whether or not the business change does.
	ErrNoTransaction = errors.New("outbox: Add needs a transaction")
)

//go:embed migrations
var migrations embed.FS

// Message is one message to publish.
type Message struct {
	// ID identifies the message, a UUID usually; it becomes the
	// HeaderMessageID Kafka header, by which consumers drop duplicates. It is
	// unique in the outbox: adding an ID twice fails with
	// gorm.ErrDuplicatedKey. Required.
	ID string
	// Topic is the Kafka topic: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
	// Required.
	Topic string
	// Key is the Kafka key and the ordering key (the order id): messages of
	// one key are published in the order they were added. Required.
	Key string
	// Headers are extra Kafka headers. Names must not be empty,
	// HeaderMessageID or a trace context header (messaging.HeaderTraceParent,
	// messaging.HeaderTraceState: Add takes the trace context from its ctx);
	// names and values must be valid UTF-8.
	Headers map[string]string
	// Payload is the message value; nil is published as empty.
	Payload []byte
}

// Add writes msgs to the outbox inside tx, the caller's transaction, so they
// are published if and only if tx commits. It checks every message first and
// writes none if one is invalid (ErrInvalidMessage). tx must be a
// transaction (gorm's db.Transaction or Begin), or Add returns
// ErrNoTransaction. It is as safe for concurrent use as tx is; ctx bounds the
// inserts. The trace context of the span in ctx, if any, is kept with each
// row: the relay publishes it as the messages' traceparent, so the consumer
// continues the trace of this transaction. After the commit, Relay.Notify wakes an idle relay of the same
// process.
func Add(ctx context.Context, tx *gorm.DB, msgs ...Message) error {
	if _, ok := tx.Statement.ConnPool.(gorm.TxCommitter); !ok {
		return ErrNoTransaction
	}
	rows := make([]row, len(msgs))
	createdAt := dbTime(tx.NowFunc())
	var trace struct{ parent, state string }
	for _, h := range messaging.InjectTraceContext(ctx, nil) {
		switch h.Key {
		case messaging.HeaderTraceParent:
			trace.parent = string(h.Value)
		case messaging.HeaderTraceState:
			trace.state = string(h.Value)
		}
	}
	for i, m := range msgs {
		if err := m.validate(); err != nil {
			return fmt.Errorf("add message %d (id %q): %w", i, m.ID, err)
		}
		headers, err := json.Marshal(m.Headers)
		if err != nil {
			return fmt.Errorf("encode headers of message %q: %w", m.ID, err)
		}
		payload := m.Payload
		if payload == nil {
			payload = []byte{} // the column is NOT NULL
		}
		rows[i] = row{ID: m.ID, Topic: m.Topic, Key: m.Key, Headers: string(headers), Payload: payload,
			TraceParent: trace.parent, TraceState: trace.state, CreatedAt: createdAt}
	}
	tx = tx.WithContext(ctx)
	for _, r := range rows {
		err := tx.Exec("INSERT INTO outbox (id, topic, key, headers, payload, traceparent, tracestate, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
			r.ID, r.Topic, r.Key, r.Headers, r.Payload, r.TraceParent, r.TraceState, r.CreatedAt).Error
		if err != nil {
			return fmt.Errorf("insert outbox message %q: %w", r.ID, err)
		}
	}
	return nil
}

// validate reports, wrapping ErrInvalidMessage, why m could never be
// published. Such a row would hold back every later message of its key.
func (m Message) validate() error {
	// The trace context headers take at most 55 + 512 bytes (W3C).
	size := len(m.ID) + len(m.Key) + len(m.Payload) + len(HeaderMessageID) + maxTraceContextBytes
	for name, value := range m.Headers {
		if name == "" || reservedHeader(name) {
			return fmt.Errorf("%w: header name %q is empty or reserved", ErrInvalidMessage, name)
		}
		// Stored as JSON, which would replace invalid UTF-8 without a word.
		if !utf8.ValidString(name) || !utf8.ValidString(value) {
			return fmt.Errorf("%w: header %q is not valid UTF-8", ErrInvalidMessage, name)
		}
		size += len(name) + len(value)
	}
	switch {
	case m.ID == "":
		return fmt.Errorf("%w: no ID", ErrInvalidMessage)
	case m.Key == "":
		return fmt.Errorf("%w: no key", ErrInvalidMessage)
	case !validTopic(m.Topic):
		return fmt.Errorf("%w: topic %q is not a legal Kafka topic name", ErrInvalidMessage, m.Topic)
	case size > MaxMessageBytes:
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidMessage, size, MaxMessageBytes)
	}
	return nil
}

// maxTraceContextBytes bounds the trace context headers: traceparent's 55
// characters and tracestate's 512, with their names.
const maxTraceContextBytes = len(messaging.HeaderTraceParent) + 55 + len(messaging.HeaderTraceState) + 512

// reservedHeader reports whether name is a header the outbox sets itself.
func reservedHeader(name string) bool {
	for _, r := range []string{HeaderMessageID, messaging.HeaderTraceParent, messaging.HeaderTraceState} {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return false
}

// validTopic reports whether Kafka accepts topic as a topic name.
func validTopic(topic string) bool {
	if topic == "" || topic == "." || topic == ".." || len(topic) > maxTopicLength {
		return false
	}
	for _, c := range []byte(topic) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// Migrate creates or updates the outbox table in db, recording the versions
// applied in VersionTable, so the service's own migrations are versioned
// apart. Call it at start-up, after opening the database; it is safe to run
// from several replicas at once (see database.MigrateTable).
func Migrate(ctx context.Context, db *database.DB, log *slog.Logger) error {
	// The DDL differs per engine (the seq column), so each has a directory.
	fsys, err := fs.Sub(migrations, "migrations/"+db.Dialect())
	if err != nil {
		return fmt.Errorf("migrate outbox: %w", err)
	}
	if err := database.MigrateTable(ctx, db, fsys, VersionTable, log); err != nil {
		return fmt.Errorf("migrate outbox: %w", err)
	}
	return nil
}

// row is a row of the outbox table.
type row struct {
	Seq     int64
	ID      string
	Topic   string
	Key     string
	Headers string
	Payload []byte
	// TraceParent and TraceState are the W3C trace context of the
	// transaction that added the row; empty outside a trace.
	TraceParent string `gorm:"column:traceparent"`
	TraceState  string `gorm:"column:tracestate"`
	CreatedAt   time.Time
}

// message returns r as the Kafka message to publish: HeaderMessageID first,
// then the extra headers sorted by name, then the trace context, if any.
func (r row) message() (kafka.Message, error) {
	var extra map[string]string
	if err := json.Unmarshal([]byte(r.Headers), &extra); err != nil {
		return kafka.Message{}, fmt.Errorf("decode headers of outbox message %q: %w", r.ID, err)
	}
	headers := make([]kafka.Header, 0, 1+len(extra))
	headers = append(headers, kafka.Header{Key: HeaderMessageID, Value: []byte(r.ID)})
	for _, name := range slices.Sorted(maps.Keys(extra)) {
		headers = append(headers, kafka.Header{Key: name, Value: []byte(extra[name])})
	}
	if r.TraceParent != "" {
		headers = append(headers, kafka.Header{Key: messaging.HeaderTraceParent, Value: []byte(r.TraceParent)})
		if r.TraceState != "" {
			headers = append(headers, kafka.Header{Key: messaging.HeaderTraceState, Value: []byte(r.TraceState)})
		}
	}
	return kafka.Message{
		Topic:   r.Topic,
		Key:     []byte(r.Key),
		Value:   r.Payload,
		Headers: headers,
		Time:    r.CreatedAt,
	}, nil
}

// dbTime is t as both engines store it: UTC, to the microsecond.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
