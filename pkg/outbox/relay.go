package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.39.0"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
)

// Defaults of RelayOptions.
const (
	DefaultBatchSize      = 200
	DefaultPollInterval   = 200 * time.Millisecond
	DefaultPublishTimeout = 10 * time.Second
	DefaultRetention      = time.Hour
)

const (
	// maxRetryInterval caps the wait between failed rounds (unless
	// PollInterval is longer).
	maxRetryInterval = 10 * time.Second
	// pruneInterval is how often Run deletes old sent rows.
	pruneInterval = time.Minute
	// observeInterval is how often, at most, Run refreshes the gauges (two
	// queries): a relay under load runs rounds back to back, an idle one
	// every PollInterval, and a gauge scraped every few seconds needs no
	// fresher value.
	observeInterval = time.Second
	// pruneBatch is how many rows one DELETE of Prune removes at most, to
	// keep its transaction short.
	pruneBatch = 1000
)

// Publisher publishes messages to Kafka. In a service it is the Writer of
// messaging.NewWriter, which waits for acks=all and hashes keys to
// partitions, as the package's guarantees need. WriteMessages must return nil
// only once the broker acknowledged every message, and kafka.WriteErrors, one
// entry per message, when it knows which failed. It is called from several
// goroutines at once (one per topic of a round).
type Publisher interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// RelayOptions tunes a Relay. The zero value is ready to use.
type RelayOptions struct {
	// BatchSize is the most messages one round publishes, several of one
	// key among them (see the package doc). Zero means DefaultBatchSize.
	BatchSize int
	// PollInterval is how long Run waits after a round that found nothing
	// to publish, unless Notify wakes it. It is also the first wait after a
	// failed round; the wait then grows up to 10s. Zero means
	// DefaultPollInterval.
	PollInterval time.Duration
	// PublishTimeout bounds the publishing of one round, all its waves. On
	// Postgres the round's keys stay locked meanwhile. Zero means
	// DefaultPublishTimeout.
	PublishTimeout time.Duration
	// Retention is how long sent rows stay in the table before Run deletes
	// them. Zero means DefaultRetention; negative, for ever.
	Retention time.Duration
	// Now tells the time: of sent_at, of the age gauge, of pruning. Nil
	// means time.Now.
	Now func() time.Time
	// TracerProvider creates a producer span for each message that was
	// added inside a trace, a child of the adding transaction's span; the
	// message's traceparent header is that span. Nil means OTel's global
	// provider, which telemetry.Start sets.
	TracerProvider trace.TracerProvider
}

// withDefaults returns o with its zero values replaced by the defaults.
func (o RelayOptions) withDefaults() RelayOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.TracerProvider == nil {
		o.TracerProvider = otel.GetTracerProvider()
	}
	return o
}

// Relay publishes the outbox of one database to Kafka: run it with Run in
// every replica on Postgres, in one process only on SQLite (see the package
// doc). Its methods are safe for concurrent use, but call Run once.
type Relay struct {
	db   *database.DB
	pub  Publisher
	opts RelayOptions
	log  *slog.Logger
	// lockClause ends the SELECTs of rows a round or Prune takes: on
	// Postgres it locks them and skips rows another relay holds; SQLite has
	// no row locks (and a single relay).
	lockClause string
	// roundQuery is the round's SELECT with lockClause in place.
	roundQuery string
	// wake carries Notify's calls to an idle Run; its buffer of one keeps
	// a call made while Run is busy.
	wake    chan struct{}
	metrics metrics
	tracer  trace.Tracer
}

// NewRelay returns a Relay publishing the outbox of db, a database migrated
// with Migrate, through pub, logging to log. It registers its metrics on reg
// (nil: not exported), which fails if reg has them already.
func NewRelay(db *database.DB, pub Publisher, opts RelayOptions, log *slog.Logger, reg prometheus.Registerer) (*Relay, error) {
	r := &Relay{
		db:      db,
		pub:     pub,
		opts:    opts.withDefaults(),
		log:     log,
		wake:    make(chan struct{}, 1),
		metrics: newMetrics(),
	}
	r.tracer = r.opts.TracerProvider.Tracer("github.com/microshop/microshop/pkg/outbox")
	if db.Dialect() == database.Postgres {
		r.lockClause = " FOR UPDATE OF o SKIP LOCKED"
	}
	r.roundQuery = fmt.Sprintf(roundQuery, r.lockClause)
	if reg != nil {
		if err := r.metrics.register(reg); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Notify tells Run that messages were added, so that an idle Run relays them
// now instead of after PollInterval; a failing Run keeps backing off. Call
// it after the transaction that added them committed. It never blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// Run relays rounds until ctx ends, then returns: the next round at once
// after a full one (BatchSize messages), after PollInterval (or Notify)
// after one that took fewer, and after a growing backoff after one that
// failed. A round that took fewer than BatchSize took every message it
// could see: what was added meanwhile was Notified, and another relay's
// locked messages are that relay's to publish. It logs
// failures, and no row is lost by them: an unpublished row stays pending for
// a later round. Every minute it deletes rows sent more than Retention ago.
// A round cut short by ctx may leave published rows unmarked, to be
// published again by the next relay.
func (r *Relay) Run(ctx context.Context) {
	r.log.InfoContext(ctx, "outbox relay started", slog.Int("batch_size", r.opts.BatchSize),
		slog.String("poll_interval", r.opts.PollInterval.String()))
	defer r.log.InfoContext(ctx, "outbox relay stopped")
	retry := &backoff.ExponentialBackOff{
		InitialInterval:     r.opts.PollInterval,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         max(maxRetryInterval, r.opts.PollInterval),
	}
	var nextPrune, nextObserve time.Time
	for {
		n, full, err := r.round(ctx)
		if now := r.opts.Now(); !now.Before(nextObserve) {
			err = errors.Join(err, r.observe(ctx))
			nextObserve = now.Add(observeInterval)
		}
		if ctx.Err() != nil {
			return // an error from shutting down is no news
		}
		if now := r.opts.Now(); !now.Before(nextPrune) {
			if _, err := r.Prune(ctx); err != nil && ctx.Err() == nil {
				r.log.ErrorContext(ctx, "prune outbox", slog.Any("error", err))
			}
			nextPrune = now.Add(pruneInterval)
		}
		wait, wake := r.opts.PollInterval, r.wake
		switch {
		case err != nil:
			r.log.ErrorContext(ctx, "relay outbox", slog.Int("relayed", n), slog.Any("error", err))
			wait, wake = retry.NextBackOff(), nil // a Notify must not cut a backoff short
		case full:
			retry.Reset()
			continue // more may be waiting
		default:
			retry.Reset()
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-wake:
			timer.Stop()
		}
	}
}

// roundQuery selects the messages of one round. First a window: the
// oldest pending messages, at most headWindow × BatchSize of them. The
// window is a prefix of the pending messages in seq order, so the oldest
// message of a key in it is the oldest pending message of that key, its
// head. Then the heads, oldest first, at most BatchSize; on Postgres the %s
// is the lock clause, which locks them and skips heads another relay
// holds. Then, oldest first and at most BatchSize in all, the pending
// messages of the heads' keys from their heads on.
//
// Holding a key's head is what keeps its order. While a head is pending,
// it is the oldest message of its key in every relay's window, so no
// other relay takes any message of that key; the relay holding the head
// takes a prefix of the key's queue (all its pending messages up to the
// round's cutoff in seq), publishes it in order and marks it sent in one
// transaction, after which the next pending message is the key's new head.
// The messages after a head need no lock of their own. One statement and
// one snapshot: the heads a concurrent relay marked sent meanwhile are
// dropped by the lock's recheck, and with them their keys.
//
// Why a window and not a NOT EXISTS probe of each pending message for an
// older one of its key, as this query had before: the probe walks the
// key's index entries that vacuum has not removed yet, so a round over a
// deep key cost its pending messages times its sent ones; chaos run 10
// left 1,035 messages of 15 keys in payment's outbox, and the rounds took
// 206–752 ms (BenchmarkRelayRoundDeadEntries, side by side: 1,819 and
// 1,749 ms a round with the probe, 50.19 and 44.95 ms with the window).
// The window is read once, and the keys' messages from their heads on skip
// the sent ones. headWindow is above 1 so that relays running side by side
// find heads the others have not locked.
const roundQuery = `WITH win AS MATERIALIZED (
  SELECT seq, key FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT ?
), heads AS MATERIALIZED (
  SELECT o.key, o.seq FROM outbox AS o
  WHERE o.sent_at IS NULL AND o.seq IN (SELECT min(seq) FROM win GROUP BY key)
  ORDER BY o.seq
  LIMIT ?%s
)
SELECT m.seq, m.id, m.topic, m.key, m.headers, m.payload, m.traceparent, m.tracestate, m.created_at
FROM outbox AS m JOIN heads AS h ON h.key = m.key AND m.seq >= h.seq
WHERE m.sent_at IS NULL
ORDER BY m.seq
LIMIT ?`

// headWindow is the window of roundQuery in rounds: how many BatchSizes
// of the oldest pending messages a round looks for heads in.
const headWindow = 4

// RelayOnce runs one round: it takes up to BatchSize pending messages, the
// oldest pending message of each key it takes and as many of the messages
// that follow it as fit, publishes them in waves that keep each key's order
// (see publishInOrder) and marks those the broker acknowledged as sent. It
// returns how many it marked, and the errors of publishing (the failed
// messages, and the later ones of their keys, stay pending) and of the
// database. It also updates the gauges. Tests call it; Run runs the same
// rounds in a loop, and refreshes the gauges at most every second.
//
// On Postgres the round is one transaction that holds its rows locked while
// it publishes. On SQLite it is not: a transaction would take the database's
// only write lock for the length of a publish and stall every writer of the
// service; the round reads, publishes, then marks.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	n, _, err := r.round(ctx)
	return n, errors.Join(err, r.observe(ctx))
}

// round is RelayOnce without the gauges. It also reports whether the round
// was full: it took BatchSize messages, and more may be pending.
func (r *Relay) round(ctx context.Context) (n int, full bool, err error) {
	var marked int64
	var publishErr error
	round := func(tx *gorm.DB) error {
		var rows []row
		if err := tx.Raw(r.roundQuery, headWindow*r.opts.BatchSize, r.opts.BatchSize, r.opts.BatchSize).Scan(&rows).Error; err != nil {
			return fmt.Errorf("select outbox messages: %w", err)
		}
		full = len(rows) == r.opts.BatchSize
		var acked []int64
		acked, publishErr = r.publishInOrder(ctx, rows)
		if len(acked) == 0 {
			return nil
		}
		res := tx.Exec("UPDATE outbox SET sent_at = ? WHERE sent_at IS NULL AND seq IN ?", dbTime(r.opts.Now()), acked)
		if res.Error != nil {
			return fmt.Errorf("mark outbox messages sent: %w", res.Error)
		}
		marked = res.RowsAffected
		return nil
	}
	if r.lockClause == "" {
		err = round(r.db.WithContext(ctx))
	} else {
		err = r.db.WithContext(ctx).Transaction(round)
	}
	if err != nil {
		marked = 0 // rolled back, or the mark failed
	}
	return int(marked), full, errors.Join(publishErr, err)
}

// publishInOrder publishes rows, in seq order, and returns the seqs of
// those the broker acknowledged. It publishes in waves: the first wave is
// the first message of every key, the next the second message of every key
// whose first was acknowledged, and so on, each wave once the one before
// was acknowledged. So a key's message is sent only after the one before it
// is in the log, and a message that fails holds back the rest of its key
// (they stay pending, in order, for a later round) and nothing else.
//
// Why not all in one WriteMessages call: kafka-go cuts the messages of one
// partition into batches (Writer.BatchSize, BatchBytes) written one after
// the other, and a later batch is written even when an earlier one failed,
// which would publish a key's later message before its earlier one. A wave
// costs a round trip to the broker, and the writer's BatchTimeout, and
// a round has as many waves as its deepest key has messages in it; the
// database is queried once per round whatever the depth.
func (r *Relay) publishInOrder(ctx context.Context, rows []row) ([]int64, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.PublishTimeout)
	defer cancel()
	queues := make(map[string][]row) // each key's rows, in seq order
	var wave []row                   // the first row of each key
	for _, row := range rows {
		if _, ok := queues[row.Key]; !ok {
			wave = append(wave, row)
		}
		queues[row.Key] = append(queues[row.Key], row)
	}
	var acked []int64
	var errs []error
	for depth := 0; len(wave) > 0; depth++ {
		if err := ctx.Err(); err != nil {
			// Stopped, or PublishTimeout: the rest stays pending. (kafka-go
			// would still write a call made now.)
			errs = append(errs, fmt.Errorf("publish: %d waves done: %w", depth, err))
			break
		}
		ok, err := r.publish(ctx, wave)
		acked = append(acked, ok...)
		if err != nil {
			errs = append(errs, err)
		}
		sent := make(map[int64]bool, len(ok))
		for _, seq := range ok {
			sent[seq] = true
		}
		var next []row
		for _, m := range wave {
			if q := queues[m.Key]; sent[m.Seq] && depth+1 < len(q) {
				next = append(next, q[depth+1])
			}
		}
		wave = next
	}
	return acked, errors.Join(errs...)
}

// publish publishes rows, at most one per key, and returns the seqs of those
// the broker acknowledged. It makes one WriteMessages call per topic, in
// parallel, because kafka-go fails a whole call when it cannot look up one
// topic: a topic the broker refuses then holds back only its own rows.
func (r *Relay) publish(ctx context.Context, rows []row) ([]int64, error) {
	byTopic := make(map[string][]row)
	for _, row := range rows {
		byTopic[row.Topic] = append(byTopic[row.Topic], row)
	}
	topics := slices.Sorted(maps.Keys(byTopic))
	acked := make([][]int64, len(topics))
	errs := make([]error, len(topics))
	var wg sync.WaitGroup
	for i, topic := range topics {
		wg.Go(func() { acked[i], errs[i] = r.publishTopic(ctx, topic, byTopic[topic]) })
	}
	wg.Wait()
	all := slices.Concat(acked...)
	r.metrics.published.Add(float64(len(all)))
	r.metrics.failures.Add(float64(len(rows) - len(all)))
	return all, errors.Join(errs...)
}

// publishTopic publishes rows, all of topic, and returns the seqs of those
// the broker acknowledged.
func (r *Relay) publishTopic(ctx context.Context, topic string, rows []row) ([]int64, error) {
	var errs []error
	msgs := make([]kafka.Message, 0, len(rows))
	seqs := make([]int64, 0, len(rows))
	spans := make([]trace.Span, 0, len(rows))
	for _, row := range rows {
		m, err := row.message()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var span trace.Span
		m, span = r.startSendSpan(ctx, row, m)
		msgs = append(msgs, m)
		seqs = append(seqs, row.Seq)
		spans = append(spans, span)
	}
	err := r.pub.WriteMessages(ctx, msgs...)
	var perMessage kafka.WriteErrors
	switch {
	case err == nil:
		endSendSpans(spans, nil)
		return seqs, errors.Join(errs...)
	case errors.As(err, &perMessage) && len(perMessage) == len(msgs):
		endSendSpans(spans, perMessage)
		var acked []int64
		var first error
		for i, err := range perMessage {
			if err == nil {
				acked = append(acked, seqs[i])
			} else if first == nil {
				first = err
			}
		}
		errs = append(errs, fmt.Errorf("publish to topic %s: %d of %d messages failed, the first: %w",
			topic, len(msgs)-len(acked), len(msgs), first))
		return acked, errors.Join(errs...)
	default:
		all := make([]error, len(spans))
		for i := range all {
			all[i] = err
		}
		endSendSpans(spans, all)
		errs = append(errs, fmt.Errorf("publish %d messages to topic %s: %w", len(msgs), topic, err))
		return nil, errors.Join(errs...)
	}
}

// startSendSpan starts the producer span of publishing m, the message of
// row, as a child of the trace context row was added in, and returns m with
// its traceparent header set to the new span. A row added outside a trace
// gets no span: the relay's own rounds start no traces.
func (r *Relay) startSendSpan(ctx context.Context, row row, m kafka.Message) (kafka.Message, trace.Span) {
	parent := messaging.ExtractTraceContext(ctx, m)
	if !trace.SpanContextFromContext(parent).IsValid() {
		return m, trace.SpanFromContext(ctx) // a no-op span
	}
	ctx, span := r.tracer.Start(parent, "send "+m.Topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			semconv.MessagingSystemKafka,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("send"),
			semconv.MessagingDestinationName(m.Topic),
			semconv.MessagingMessageID(row.ID),
			semconv.MessagingKafkaMessageKey(row.Key),
			semconv.MessagingMessageBodySize(len(m.Value)),
			attribute.Float64("messaging.microshop.outbox_wait_seconds", r.opts.Now().Sub(row.CreatedAt).Seconds()),
		))
	m.Headers = messaging.InjectTraceContext(ctx, m.Headers)
	return m, span
}

// endSendSpans ends the spans of a WriteMessages call; errs, if not nil,
// holds each message's error.
func endSendSpans(spans []trace.Span, errs []error) {
	for i, span := range spans {
		if errs != nil && errs[i] != nil {
			span.RecordError(errs[i])
			span.SetStatus(codes.Error, errs[i].Error())
		}
		span.End()
	}
}

// Prune deletes the rows sent more than Retention ago, a batch at a time, and
// returns how many it deleted. With a negative Retention it deletes nothing.
// Run calls it every minute; replicas may prune at the same time.
func (r *Relay) Prune(ctx context.Context) (int, error) {
	if r.opts.Retention < 0 {
		return 0, nil
	}
	cutoff := dbTime(r.opts.Now().Add(-r.opts.Retention))
	deleted := 0
	for {
		res := r.db.WithContext(ctx).Exec(
			"DELETE FROM outbox WHERE seq IN (SELECT o.seq FROM outbox AS o WHERE o.sent_at < ? ORDER BY o.sent_at LIMIT ?"+r.lockClause+")",
			cutoff, pruneBatch)
		if res.Error != nil {
			return deleted, fmt.Errorf("delete sent outbox messages: %w", res.Error)
		}
		deleted += int(res.RowsAffected)
		if res.RowsAffected < pruneBatch {
			return deleted, nil
		}
	}
}

// observe sets the gauges from the table. Every relay of a database reports
// the same, whole-table figures.
func (r *Relay) observe(ctx context.Context) error {
	db := r.db.WithContext(ctx)
	var pending int64
	if err := db.Raw("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").Scan(&pending).Error; err != nil {
		return fmt.Errorf("count pending outbox messages: %w", err)
	}
	// The oldest by seq, not MIN(created_at): an aggregate loses the column
	// type on SQLite and comes back as text.
	var oldest []time.Time
	if err := db.Raw("SELECT created_at FROM outbox WHERE sent_at IS NULL ORDER BY seq LIMIT 1").Scan(&oldest).Error; err != nil {
		return fmt.Errorf("select oldest pending outbox message: %w", err)
	}
	age := 0.0
	if len(oldest) > 0 {
		age = max(0, r.opts.Now().Sub(oldest[0]).Seconds())
	}
	r.metrics.pending.Set(float64(pending))
	r.metrics.oldestAge.Set(age)
	return nil
}

// metrics are a Relay's Prometheus metrics.
type metrics struct {
	pending   prometheus.Gauge
	oldestAge prometheus.Gauge
	published prometheus.Counter
	failures  prometheus.Counter
}

func newMetrics() metrics {
	return metrics{
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_pending_messages",
			Help: "Messages in the outbox not yet published, as of the relay's last round.",
		}),
		oldestAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_oldest_pending_age_seconds",
			Help: "Age of the oldest message not yet published (the relay's lag), 0 when none is pending.",
		}),
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total",
			Help: "Messages the broker acknowledged, counting those published again after a crash.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_failures_total",
			Help: "Messages whose publishing failed; they stay pending and are retried.",
		}),
	}
}

// register registers m on reg, all or none.
func (m metrics) register(reg prometheus.Registerer) error {
	collectors := []prometheus.Collector{m.pending, m.oldestAge, m.published, m.failures}
	for i, c := range collectors {
		if err := reg.Register(c); err != nil {
			for _, done := range collectors[:i] {
				reg.Unregister(done)
			}
			return fmt.Errorf("register outbox metrics: %w", err)
		}
	}
	return nil
}
