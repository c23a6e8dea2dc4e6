package messaging

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/telemetry"
)

// Handler handles one consumed message. It returns nil when the message is
// handled, an error wrapped by [Permanent] when it can never be (it goes to the
// dead-letter topic at once), and any other error when a later attempt may
// succeed (it is retried).
//
// A consumer calls its handler from one goroutine, one message at a time. ctx
// is not cancelled when Run is stopped, so the message in hand can finish; it
// ends after [ConsumerConfig.HandlerTimeout]. A handler must be idempotent: a
// message is delivered again after a crash, a rebalance or a failed commit.
type Handler func(ctx context.Context, msg kafka.Message) error

// Permanent marks err as not worth retrying: the message cannot be handled,
// now or later (its payload does not decode, it fails validation). The
// consumer writes it to the dead-letter topic after this one attempt.
// Permanent(nil) is nil; the result's text is err's and it wraps err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// permanentError is an error marked by Permanent.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// isPermanent reports whether err, or an error it wraps, was marked by
// Permanent.
func isPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ErrClosed is wrapped by the error Run returns when the consumer was closed
// before or while Run ran.
var ErrClosed = errors.New("consumer closed")

// ConsumerConfig configures a [Consumer]. A zero duration or count takes the
// default given with its field.
type ConsumerConfig struct {
	// Config holds the bootstrap brokers (at least one) and the client id.
	Config
	// GroupID names the consumer group: the members of one group share the
	// partitions of Topics, and the group's committed offsets say where a
	// member resumes. Required.
	GroupID string
	// Topics are the topics consumed; at least one.
	Topics []string
	// DeadLetterTopic receives the messages the handler could not handle.
	// Required, and not one of Topics. Create it with [EnsureTopics].
	DeadLetterTopic string

	// MaxAttempts is how many times the handler is called with a message that
	// keeps failing before it goes to the dead-letter topic. Default 5.
	//
	// With the default backoff, five attempts span about 8 seconds: an outage
	// of a dependency longer than that sends messages to the dead-letter
	// topic, from which they can be replayed. Raise MaxAttempts or MaxBackoff
	// where outages are expected to last longer.
	MaxAttempts int
	// MinBackoff is the wait after the first failure; each further failure
	// multiplies it by 1.5, up to MaxBackoff, each wait jittered by ±50%. The
	// same backoff paces retries of fetches, dead-letter writes and commits,
	// and rejoining the group after a failed join. Default 1s.
	MinBackoff time.Duration
	// MaxBackoff caps the wait between attempts. Default 30s.
	MaxBackoff time.Duration
	// HandlerTimeout bounds one call of the handler; a call that overruns
	// sees its context end and its failure retried. Default 30s.
	HandlerTimeout time.Duration

	// SessionTimeout is how long the group coordinator waits for a heartbeat
	// before it declares a member dead and gives its partitions to others: the
	// time a crashed member's partitions stand still. Kafka, and the embedded
	// broker, refuse less than 6s by default (group.min.session.timeout.ms).
	// Default 10s.
	SessionTimeout time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member to
	// rejoin when the group changes; a member that died without leaving holds
	// up the others this long. It must leave a member time for a few
	// heartbeats, which is how members learn of a rebalance. Default 3s.
	RebalanceTimeout time.Duration
	// HeartbeatInterval is how often a member tells the coordinator it is
	// alive; it must be well below SessionTimeout. Default 1s.
	HeartbeatInterval time.Duration
	// MaxWait is the longest a fetch waits at the broker for new messages
	// before asking again; it also bounds how long closing the reader takes.
	// Default 500ms.
	MaxWait time.Duration

	// Concurrency is how many messages the consumer handles at once, each
	// from a different partition: every partition is handled by one of
	// Concurrency workers, one message at a time and in order, so a key's
	// order holds. Above 1 the handler must be safe for concurrent use.
	// Concurrency beyond the partitions this member owns leaves workers
	// idle. Default 1.
	Concurrency int

	// TracerProvider creates the span of each message's handling, a child
	// of the trace context in the message's headers (see
	// [ExtractTraceContext]); the handler's ctx holds it. Nil means OTel's
	// global provider, which telemetry.Start sets.
	TracerProvider trace.TracerProvider

	// AfterHandle, if set, is called with each message the handler handled
	// successfully, after the handler returned and before the message is
	// committed. It is a fault-injection hook for tests and the chaos
	// harness (pkg/faultinject): a hook that kills the process there makes the message be
	// delivered again although its effect was applied, a duplicate delivery
	// on demand. Nil (the default) does nothing; production code leaves it nil.
	AfterHandle func(msg kafka.Message)
}

// Defaults of ConsumerConfig, documented on its fields.
const (
	defaultMaxAttempts       = 5
	defaultMinBackoff        = time.Second
	defaultMaxBackoff        = 30 * time.Second
	defaultHandlerTimeout    = 30 * time.Second
	defaultSessionTimeout    = 10 * time.Second
	defaultRebalanceTimeout  = 3 * time.Second
	defaultHeartbeatInterval = time.Second
	defaultMaxWait           = 500 * time.Millisecond
)

// MaxConcurrency bounds ConsumerConfig.Concurrency, for services that read it
// from their configuration: more workers than a broker has partitions of a
// topic do nothing, and Kafka topics rarely have more than a few hundred.
const MaxConcurrency = 1024

// workerQueue is how many fetched messages wait for each worker. A worker
// busy retrying holds up the fetching of every partition once its queue is
// full, so the queue lets the other workers go on meanwhile; messages still
// queued when Run stops are not committed and are delivered again.
const workerQueue = 32

// maxDuration bounds ConsumerConfig's durations: kafka-go sends the group
// timeouts as int32 milliseconds and panics beyond that (about 24 days).
const maxDuration = 24 * time.Hour

// settleTimeout bounds one attempt at writing a message to the dead-letter
// topic or committing it. It is not configurable: kafka-go retries within it,
// and the consumer retries beyond it.
const settleTimeout = 10 * time.Second

// withDefaults returns cfg with its zero values replaced by the defaults, or
// an error if cfg cannot work.
func (cfg ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	switch {
	case len(cfg.Brokers) == 0:
		return cfg, errors.New("no brokers configured")
	case cfg.GroupID == "":
		return cfg, errors.New("no group id")
	case len(cfg.Topics) == 0 || slices.Contains(cfg.Topics, ""):
		return cfg, fmt.Errorf("topics %q: want at least one, none empty", cfg.Topics)
	case cfg.DeadLetterTopic == "":
		return cfg, errors.New("no dead-letter topic")
	case slices.Contains(cfg.Topics, cfg.DeadLetterTopic):
		return cfg, fmt.Errorf("dead-letter topic %s is also consumed", cfg.DeadLetterTopic)
	case cfg.MaxAttempts < 0:
		return cfg, fmt.Errorf("max attempts %d is negative", cfg.MaxAttempts)
	case cfg.Concurrency < 0 || cfg.Concurrency > MaxConcurrency:
		return cfg, fmt.Errorf("concurrency %d: want between 0 and %d", cfg.Concurrency, MaxConcurrency)
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = defaultMaxAttempts
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 1
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"min backoff", &cfg.MinBackoff, defaultMinBackoff},
		{"max backoff", &cfg.MaxBackoff, defaultMaxBackoff},
		{"handler timeout", &cfg.HandlerTimeout, defaultHandlerTimeout},
		{"session timeout", &cfg.SessionTimeout, defaultSessionTimeout},
		{"rebalance timeout", &cfg.RebalanceTimeout, defaultRebalanceTimeout},
		{"heartbeat interval", &cfg.HeartbeatInterval, defaultHeartbeatInterval},
		{"max wait", &cfg.MaxWait, defaultMaxWait},
	}
	for _, f := range durations {
		if *f.d < 0 || *f.d > maxDuration {
			return cfg, fmt.Errorf("%s %v: want between 0 and %v", f.name, *f.d, maxDuration)
		}
		if *f.d == 0 {
			*f.d = f.def
		}
	}
	if cfg.MinBackoff > cfg.MaxBackoff {
		return cfg, fmt.Errorf("min backoff %v is above max backoff %v", cfg.MinBackoff, cfg.MaxBackoff)
	}
	if cfg.HeartbeatInterval >= cfg.SessionTimeout {
		return cfg, fmt.Errorf("heartbeat interval %v is not below session timeout %v", cfg.HeartbeatInterval, cfg.SessionTimeout)
	}
	return cfg, nil
}

// Consumer is a consumer-group member that calls a [Handler] for each message
// of its topics, in partition order, and commits each message once it is
// handled or dead-lettered. Create it with [NewConsumer], start it with
// [Consumer.Run], stop it by cancelling Run's context, and release it with
// [Consumer.Close].
//
// The loop is written here rather than taken from a framework because it is
// the point of the package: what is committed when is what makes delivery
// at-least-once, and kafka-go offers only the parts (FetchMessage,
// CommitMessages).
//
// For each message:
//   - the handler is called until it succeeds, returns a [Permanent] error, or
//     has failed MaxAttempts times, with backoff in between. Retries happen in
//     place, so a partition's order holds across them; while a message is
//     retried, the other partitions of its worker wait too (see
//     [ConsumerConfig.Concurrency]).
//   - A message that did not succeed is written to the dead-letter topic,
//     acknowledged by all in-sync replicas, with the dead-letter headers
//     (HeaderDLQError and the others) added to its own, and the partition
//     moves on. If that write fails it is retried and the message is not
//     committed meanwhile, so nothing is lost.
//   - The message is committed, synchronously, before its worker takes the
//     next. A failed commit is retried.
//
// Metrics: messaging_consumed_total{topic,outcome} (outcome ok, retried or
// dead_lettered; counted once committed), messaging_handler_duration_seconds{topic}
// (one observation per handler call) and messaging_dead_lettered_total{topic}.
//
// Run and Close may be called from different goroutines; one Run at a time.
type Consumer struct {
	cfg     ConsumerConfig     // with defaults
	rcfg    kafka.ReaderConfig // a reader is created by each Run
	handler Handler
	log     *slog.Logger
	metrics *metrics
	tracer  trace.Tracer
	dlq     messageWriter

	mu     sync.Mutex
	reader *kafka.Reader           // the running Run's reader; nil when not running
	cancel context.CancelCauseFunc // ends the running Run's context
	closed bool
}

// messageWriter is the part of a kafka.Writer the consumer uses to write to
// the dead-letter topic.
type messageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
	Close() error
}

// NewConsumer returns a consumer of cfg.Topics that calls h for each message.
// It checks cfg and applies its defaults but connects to nothing: the group
// is joined by Run.
//
// log receives what the consumer does (nil discards it). The metrics are
// registered with reg; consumers given the same reg share them, and a nil reg
// registers nothing.
func NewConsumer(cfg ConsumerConfig, h Handler, log *slog.Logger, reg prometheus.Registerer) (*Consumer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	if h == nil {
		return nil, errors.New("new consumer: no handler")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("group", cfg.GroupID))
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("new consumer: %w", err)
	}
	// Series that exist from the start read 0 rather than nothing, so that
	// alerts and dashboards on dead letters work before the first one.
	for _, topic := range cfg.Topics {
		m.deadLettered.WithLabelValues(topic)
	}
	warn := func(component string) kafka.LoggerFunc {
		return func(format string, args ...any) {
			log.Warn(component, slog.String("detail", fmt.Sprintf(format, args...)))
		}
	}
	dlq := NewWriter(cfg.Config)
	dlq.ErrorLogger = warn("kafka dead-letter writer")
	return &Consumer{
		cfg: cfg,
		rcfg: kafka.ReaderConfig{
			Brokers:           cfg.Brokers,
			GroupID:           cfg.GroupID,
			GroupTopics:       cfg.Topics,
			Dialer:            &kafka.Dialer{ClientID: cfg.ClientID, Timeout: 10 * time.Second},
			StartOffset:       kafka.FirstOffset, // a new group reads what was sent before it joined
			CommitInterval:    0,                 // CommitMessages commits synchronously
			MaxWait:           cfg.MaxWait,
			SessionTimeout:    cfg.SessionTimeout,
			RebalanceTimeout:  cfg.RebalanceTimeout,
			HeartbeatInterval: cfg.HeartbeatInterval,
			JoinGroupBackoff:  cfg.MinBackoff,
			ErrorLogger:       warn("kafka reader"),
		},
		handler: h,
		log:     log,
		metrics: m,
		tracer:  tracerOf(cfg.TracerProvider),
		dlq:     dlq,
	}, nil
}

// Run joins the group and handles messages until ctx is done, then returns
// nil. Stopping is graceful: the handler calls in progress are not cancelled
// (their context is not derived from ctx's cancellation), and the messages
// they settle are written to the dead-letter topic if need be and committed
// before Run returns. A message waiting between attempts, or in a worker's
// queue, is left uncommitted: it is delivered again, to this group's next
// owner of its partition. Run leaves the group before it returns, so its
// partitions move to other members at once.
//
// Run returns an error if it could not settle a message in hand after ctx
// was done (the message is then delivered again), and an error wrapping
// [ErrClosed] if Close is called before or while it runs: the messages in
// hand are then left uncommitted, as in a crash. Failures to fetch, to write
// to the dead-letter topic and to commit are otherwise logged and retried.
//
// One Run at a time; after it returns, Run may be called again.
func (c *Consumer) Run(ctx context.Context) error {
	ctx, r, err := c.start(ctx)
	if err != nil {
		return fmt.Errorf("run consumer: %w", err)
	}
	defer c.stop(r)

	c.log.Info("consumer started", slog.Any("topics", c.cfg.Topics), slog.Int("concurrency", c.cfg.Concurrency))
	// A worker that fails ends the Run: the other workers stop as on a
	// graceful stop, and Run returns the first failure.
	ctx, stopWorkers := context.WithCancel(ctx)
	defer stopWorkers()
	var (
		failOnce sync.Once
		failed   error
	)
	fail := func(err error) {
		failOnce.Do(func() { failed = err })
		stopWorkers()
	}
	queues := make([]chan kafka.Message, c.cfg.Concurrency)
	var workers sync.WaitGroup
	for i := range queues {
		queues[i] = make(chan kafka.Message, workerQueue)
		workers.Go(func() {
			for msg := range queues[i] {
				if ctx.Err() != nil {
					continue // not handled, not committed: delivered again
				}
				if err := c.process(ctx, r, msg); err != nil {
					fail(err)
				}
			}
		})
	}
	err = c.dispatch(ctx, r, queues)
	if err != nil {
		stopWorkers()
	}
	for _, q := range queues {
		close(q)
	}
	workers.Wait()

	switch {
	case c.isClosed():
		return fmt.Errorf("run consumer: %w", ErrClosed)
	case err != nil || failed != nil:
		return fmt.Errorf("run consumer: %w", errors.Join(err, failed))
	}
	c.log.Info("consumer stopped")
	return nil
}

// dispatch fetches messages and queues each to the worker of its partition,
// until ctx is done. It returns an error only if fetching failed for good.
//
// The worker of a partition is fixed for the Run, which is what keeps a
// partition's messages in order: one worker handles them, one at a time.
func (c *Consumer) dispatch(ctx context.Context, r *kafka.Reader, queues []chan kafka.Message) error {
	for {
		msg, err := c.fetch(ctx, r)
		if ctx.Err() != nil {
			// A message fetched as ctx ended is not handled: it is not
			// committed and will be delivered again.
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case queues[worker(msg, len(queues))] <- msg:
		case <-ctx.Done():
			return nil
		}
	}
}

// worker returns the index, below n, of the worker that handles msg's
// partition.
func worker(msg kafka.Message, n int) int {
	h := fnv.New32a()
	h.Write([]byte(msg.Topic))
	return int((h.Sum32() + uint32(msg.Partition)) % uint32(n))
}

// Close stops the consumer for good and releases it: it closes the reader of
// a Run in progress, which then returns without committing the message in
// hand, and the dead-letter writer. Stop Run through its context first for a
// graceful stop. Close is safe to call more than once.
func (c *Consumer) Close() error {
	c.mu.Lock()
	c.closed = true
	r, cancel := c.reader, c.cancel
	c.mu.Unlock()

	var errs []error
	if cancel != nil {
		cancel(ErrClosed) // ends Run's backoff waits and fetch
	}
	if r != nil {
		if err := r.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close kafka reader: %w", err))
		}
	}
	if err := c.dlq.Close(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("close consumer: %w", errors.Join(errs...))
	}
	return nil
}

// start creates the reader of a Run, which joins the group in the
// background, and derives from ctx the Run's context, which Close ends too.
func (c *Consumer) start(ctx context.Context) (context.Context, *kafka.Reader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ctx, nil, ErrClosed
	}
	if c.reader != nil {
		return ctx, nil, errors.New("already running")
	}
	ctx, c.cancel = context.WithCancelCause(ctx)
	c.reader = kafka.NewReader(c.rcfg)
	return ctx, c.reader, nil
}

// stop closes the reader of a Run, leaving the group.
func (c *Consumer) stop(r *kafka.Reader) {
	if err := r.Close(); err != nil {
		c.log.Warn("close kafka reader", slog.Any("error", err))
	}
	c.mu.Lock()
	c.cancel(nil)
	c.reader, c.cancel = nil, nil
	c.mu.Unlock()
}

// isClosed reports whether Close was called.
func (c *Consumer) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// fetch returns the next message, retrying failed fetches until ctx is done.
func (c *Consumer) fetch(ctx context.Context, r *kafka.Reader) (kafka.Message, error) {
	msg, err := retry(ctx, c, 0, func() (kafka.Message, error) {
		return r.FetchMessage(ctx)
	}, func(err error, wait time.Duration) {
		c.log.Warn("fetch message failed; will retry", slog.Duration("retry_in", wait), slog.Any("error", err))
	})
	if err != nil {
		return msg, fmt.Errorf("fetch message: %w", err)
	}
	return msg, nil
}

// process handles msg, writes it to the dead-letter topic if it failed, and
// commits it. It returns nil without committing if ctx is done between two
// attempts, and an error if the dead-letter write or the commit failed and
// ctx is done or the consumer closed.
func (c *Consumer) process(ctx context.Context, r *kafka.Reader, msg kafka.Message) (err error) {
	// The partition's high-water mark came with the message: what is behind
	// it waits for it to be handled (per-partition order), and is the lag.
	c.metrics.lag.WithLabelValues(msg.Topic, strconv.Itoa(msg.Partition)).Set(float64(max(msg.HighWaterMark-msg.Offset-1, 0)))
	ctx, span := c.startProcessSpan(ctx, msg)
	attempts, handleErr := c.handle(ctx, msg)
	outcome := outcomeOK
	defer func() { endProcessSpan(span, outcome, attempts, errors.Join(handleErr, err)) }()
	switch err := handleErr; {
	case err == nil:
		if attempts > 1 {
			outcome = outcomeRetried
		}
		if c.cfg.AfterHandle != nil {
			c.cfg.AfterHandle(msg)
		}
	case isPermanent(err) || attempts >= c.cfg.MaxAttempts:
		if err := c.deadLetter(ctx, msg, attempts, err); err != nil {
			return err
		}
		outcome = outcomeDeadLettered
	default:
		// handle gives up early only when ctx is done or the consumer
		// closed: leave msg to its next delivery.
		c.log.InfoContext(ctx, "stopped before the message was handled; it will be delivered again",
			messageAttr(msg), slog.Int("attempts", attempts), slog.Any("error", err))
		outcome = outcomeInterrupted
		return nil
	}
	if err := c.commit(ctx, r, msg); err != nil {
		return err
	}
	c.metrics.consumed.WithLabelValues(msg.Topic, outcome).Inc()
	return nil
}

// handle calls the handler with msg until it succeeds, fails permanently or
// has failed MaxAttempts times, or until ctx is done or the consumer closed
// between two attempts. It returns the number of calls and the last error.
func (c *Consumer) handle(ctx context.Context, msg kafka.Message) (attempts int, err error) {
	_, err = retry(ctx, c, c.cfg.MaxAttempts, func() (struct{}, error) {
		attempts++
		err := c.call(ctx, msg)
		if isPermanent(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}, func(err error, wait time.Duration) {
		c.log.WarnContext(ctx, "handle message failed; will retry", messageAttr(msg),
			slog.Int("attempt", attempts), slog.Duration("retry_in", wait), slog.Any("error", err))
	})
	return attempts, err
}

// call calls the handler once, with a context that ctx's cancellation does
// not reach, so that a stop lets the message in hand finish, bounded by
// HandlerTimeout. A panic becomes a permanent error: the message that caused
// it would cause it again.
func (c *Consumer) call(ctx context.Context, msg kafka.Message) (err error) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.cfg.HandlerTimeout)
	defer cancel()
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			c.log.ErrorContext(ctx, "message handler panicked", messageAttr(msg),
				slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			err = Permanent(fmt.Errorf("handler panicked: %v", p))
		}
		telemetry.Observe(ctx, c.metrics.duration.WithLabelValues(msg.Topic), time.Since(start))
	}()
	return c.handler(hctx, msg)
}

// deadLetter writes msg, which failed attempts times with cause, to the
// dead-letter topic, retrying until the write succeeds, ctx is done or the
// consumer is closed.
func (c *Consumer) deadLetter(ctx context.Context, msg kafka.Message, attempts int, cause error) error {
	dead := deadLetter(c.cfg.DeadLetterTopic, msg, attempts, cause)
	err := c.settle(ctx, msg, "write to dead-letter topic", func(ctx context.Context) error {
		return c.dlq.WriteMessages(ctx, dead)
	})
	if err != nil {
		return err
	}
	c.metrics.deadLettered.WithLabelValues(msg.Topic).Inc()
	c.log.ErrorContext(ctx, "message dead-lettered", messageAttr(msg), slog.String("dead_letter_topic", c.cfg.DeadLetterTopic),
		slog.Int("attempts", attempts), slog.Any("error", cause))
	return nil
}

// commit commits msg, retrying until the commit succeeds, ctx is done or the
// consumer is closed.
func (c *Consumer) commit(ctx context.Context, r *kafka.Reader, msg kafka.Message) error {
	return c.settle(ctx, msg, "commit message", func(ctx context.Context) error {
		return r.CommitMessages(ctx, msg)
	})
}

// settle runs op, a step that settles msg, until it succeeds. Each attempt
// gets a context that ctx's cancellation does not reach, bounded by
// settleTimeout, so a stop lets the attempt in progress finish; once ctx is
// done no new attempt starts.
func (c *Consumer) settle(ctx context.Context, msg kafka.Message, what string, op func(context.Context) error) error {
	_, err := retry(ctx, c, 0, func() (struct{}, error) {
		octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
		defer cancel()
		return struct{}{}, op(octx)
	}, func(err error, wait time.Duration) {
		c.log.Warn(what+" failed; will retry", messageAttr(msg), slog.Duration("retry_in", wait), slog.Any("error", err))
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// retry calls op until it succeeds, fails with an error marked by
// backoff.Permanent, or has been called maxTries times (0: no limit), waiting
// out c's backoff between failures and telling failed of each wait. It stops
// early when ctx is done or c is closed, and calls op no more once c is
// closed. It returns op's last error (wrapping ErrClosed if c is closed),
// where backoff.Retry would return ctx's.
//
// The clock is not injectable: its waits only pace retries, no decision
// depends on the time, and tests make them short instead.
func retry[T any](ctx context.Context, c *Consumer, maxTries int, op func() (T, error), failed backoff.Notify) (T, error) {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = c.cfg.MinBackoff
	b.MaxInterval = c.cfg.MaxBackoff
	var last error
	v, err := backoff.Retry(ctx, func() (T, error) {
		if c.isClosed() {
			var zero T
			last = backoff.Permanent(ErrClosed)
			return zero, last
		}
		v, err := op()
		if err != nil && c.isClosed() {
			err = backoff.Permanent(fmt.Errorf("%w: %w", ErrClosed, err))
		}
		last = err
		return v, err
	},
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(maxTries)),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(failed),
	)
	var permanent *backoff.PermanentError
	if err == nil || errors.As(last, &permanent) {
		return v, err // backoff.Retry unwrapped the permanent error
	}
	return v, last
}

// messageAttr identifies msg in a log record.
func messageAttr(msg kafka.Message) slog.Attr {
	return slog.Group("message",
		slog.String("topic", msg.Topic),
		slog.Int("partition", msg.Partition),
		slog.Int64("offset", msg.Offset))
}
