// Package liverules keeps a service's rules — breaker thresholds, limiter
// rules — in Consul KV, so that operators change them while the service
// runs, without a restart or a deploy.
//
// Each concern of each service is one JSON document at one key,
// microshop/<service>/<concern> (see [Key]), for example
// microshop/gateway/breaker. A [Watch] reads it at start ([Watch.Load]) and
// then follows it ([Watch.Run]) with Consul's blocking queries: the query
// names the index of the value it has and Consul answers when the key
// changes, so a new value takes effect within a round trip.
//
// A new value is decoded strictly (unknown fields and trailing data are
// errors) and then checked by the caller's Validate before it replaces the
// value in force. A value that fails either is rejected: a warning is
// logged, liverules_rejected_total{key} counts it, and the last good value
// stays — a typo in the KV store must not take the breakers down. The
// accepted values are counted by liverules_applied_total{key}. A key that
// does not exist, or is deleted, means the defaults the caller gave.
//
// When Consul cannot be reached the watch retries with backoff and the
// value in force stays. In the embedded mode, which has no Consul, the same
// document comes from an environment variable: [Parse] decodes and checks
// it once at start.
package liverules

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
)

// Prefix is the KV prefix of every service's rules.
const Prefix = "microshop/"

// Key returns the KV key of a service's document about concern:
// "microshop/<service>/<concern>".
func Key(service, concern string) string { return Prefix + service + "/" + concern }

// Parse decodes doc as a T and checks it with validate (nil: no check).
// An empty doc means def. It is the embedded mode's reading of the
// document, given as an environment variable's value.
func Parse[T any](doc string, def T, validate func(T) error) (T, error) {
	if doc == "" {
		return def, nil
	}
	return decode([]byte(doc), validate)
}

// decode decodes data strictly into a new T and validates it.
func decode[T any](data []byte, validate func(T) error) (T, error) {
	var v T
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return v, fmt.Errorf("decode: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return v, errors.New("decode: data after the document")
	}
	if validate != nil {
		if err := validate(v); err != nil {
			return v, fmt.Errorf("invalid: %w", err)
		}
	}
	return v, nil
}

// Options configure a Watch. The zero value is usable.
type Options[T any] struct {
	// Validate checks a decoded value before it replaces the one in
	// force; nil accepts every value that decodes.
	Validate func(T) error
	// OnChange is called with every value put in force — a new document,
	// or the defaults when the key is missing or deleted — before Current
	// returns it. It is called from the goroutine of Load or Run, one call
	// at a time.
	OnChange func(T)
	// Logger receives a line per value applied or rejected and per failed
	// query; nil means slog.Default().
	Logger *slog.Logger
	// Metrics is where liverules_* are registered; nil: not exported.
	// Several watches may share one.
	Metrics prometheus.Registerer
	// WaitTime bounds one blocking query; zero means one minute.
	WaitTime time.Duration
	// MaxBackoff caps the pause between queries after failures; zero
	// means 5s.
	MaxBackoff time.Duration
}

// Watch follows one key. Current is safe to call from any goroutine; Load
// and Run must not run at the same time.
type Watch[T any] struct {
	kv      *api.KV
	key     string
	def     T
	opts    Options[T]
	log     *slog.Logger
	metrics *metrics

	current atomic.Pointer[T]
	index   uint64 // of the last answer, for the next blocking query
	// seen is the last document handled, nil when the last answer had
	// none. Documents are compared by content, not by ModifyIndex: the
	// indexes of a Consul that lost its data start over and repeat.
	seen    []byte
	started bool // an answer has been handled
}

// NewWatch returns a watch of key through client. Until Load or Run find
// a document, Current returns def.
func NewWatch[T any](client *api.Client, key string, def T, opts Options[T]) (*Watch[T], error) {
	m, err := newMetrics(opts.Metrics)
	if err != nil {
		return nil, err
	}
	w := &Watch[T]{
		kv:      client.KV(),
		key:     key,
		def:     def,
		opts:    opts,
		log:     cmp.Or(opts.Logger, slog.Default()).With(slog.String("key", key)),
		metrics: m,
	}
	w.current.Store(&def)
	return w, nil
}

// Current returns the value in force.
func (w *Watch[T]) Current() T { return *w.current.Load() }

// Load reads the key once and puts its document in force if it is valid
// (a missing key: the defaults). It returns an error only when Consul did
// not answer; the value in force is then unchanged.
func (w *Watch[T]) Load(ctx context.Context) error {
	pair, meta, err := w.kv.Get(w.key, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("read %s from consul: %w", w.key, err)
	}
	w.handle(ctx, pair, meta.LastIndex)
	return nil
}

// Run follows the key with blocking queries until ctx ends, then returns
// nil. Failed queries are logged and retried with backoff.
func (w *Watch[T]) Run(ctx context.Context) error {
	pause := &backoff.ExponentialBackOff{
		InitialInterval:     100 * time.Millisecond,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         cmp.Or(w.opts.MaxBackoff, 5*time.Second),
	}
	pause.Reset()
	for {
		q := (&api.QueryOptions{WaitIndex: w.index, WaitTime: cmp.Or(w.opts.WaitTime, time.Minute)}).WithContext(ctx)
		pair, meta, err := w.kv.Get(w.key, q)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// Ask afresh next time: the agent may come back restarted,
			// its indexes started over, and a query waiting for the old
			// index would sit out its whole wait time on a stale value.
			w.index = 0
			wait := pause.NextBackOff()
			w.log.WarnContext(ctx, "consul query failed; keeping the rules in force",
				slog.Any("error", err), slog.Duration("retry_in", wait))
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		pause.Reset()
		w.handle(ctx, pair, meta.LastIndex)
	}
}

// handle takes one answer: pair is the key's entry, nil if it does not
// exist, and index the answer's index.
func (w *Watch[T]) handle(ctx context.Context, pair *api.KVPair, index uint64) {
	// Consul's rules for blocking queries: an index that went backwards
	// (Consul restarted) starts over, and 0 would never block.
	switch {
	case index < w.index:
		w.index = 0
	case index == 0:
		w.index = 1
	default:
		w.index = index
	}
	first := !w.started
	w.started = true
	if pair == nil {
		if first || w.seen != nil {
			w.seen = nil
			w.log.InfoContext(ctx, "no rules document; defaults in force")
			w.apply(w.def)
		}
		return
	}
	if w.seen != nil && bytes.Equal(pair.Value, w.seen) {
		return // woken by another key's change, the wait ended, or the same document put again
	}
	w.seen = bytes.Clone(pair.Value)
	if w.seen == nil {
		w.seen = []byte{} // an empty document is still a document
	}
	v, err := decode(pair.Value, w.opts.Validate)
	if err != nil {
		w.metrics.rejected(w.key)
		w.log.WarnContext(ctx, "rules document rejected; the last good rules stay",
			slog.Any("error", err), slog.Uint64("modify_index", pair.ModifyIndex))
		return
	}
	w.metrics.applied(w.key)
	w.log.InfoContext(ctx, "rules document applied", slog.Uint64("modify_index", pair.ModifyIndex))
	w.apply(v)
}

// apply hands v to OnChange and then makes it Current, so that whoever
// sees the new Current knows OnChange has applied it.
func (w *Watch[T]) apply(v T) {
	if w.opts.OnChange != nil {
		w.opts.OnChange(v)
	}
	w.current.Store(&v)
}

// metrics are the liverules_* families; a nil *metrics records nothing.
type metrics struct{ rejections, applications *prometheus.CounterVec }

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liverules_rejected_total",
			Help: "Rules documents read from Consul KV that did not decode or validate; the last good rules stayed.",
		}, []string{"key"}),
		applications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "liverules_applied_total",
			Help: "Rules documents read from Consul KV and put in force.",
		}, []string{"key"}),
	}
	var err error
	if m.rejections, err = register(reg, m.rejections); err != nil {
		return nil, err
	}
	if m.applications, err = register(reg, m.applications); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the collector of the same
// description already registered there.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		if existing, ok := already.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return c, err
}

func (m *metrics) rejected(key string) {
	if m != nil {
		m.rejections.WithLabelValues(key).Inc()
	}
}

func (m *metrics) applied(key string) {
	if m != nil {
		m.applications.WithLabelValues(key).Inc()
	}
}
