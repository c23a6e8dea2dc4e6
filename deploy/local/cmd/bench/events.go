package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// final is an order's OrderConfirmed or OrderCancelled as the reader saw it.
type final struct {
	arrived   time.Time // when the reader got it (this process's clock, monotonic)
	occurred  time.Time // the envelope's occurred_at (the order service's wall clock)
	confirmed bool
}

// order is one order this run placed.
type order struct {
	sent     time.Time // just before the POST was sent
	measured bool      // sent inside the measurement window
	done     chan struct{}
	final    final // set before done is closed
}

// tracker matches final events to the orders placed. An event can arrive
// before the POST's answer carrying the order id has been read, so events
// for unknown orders are kept until the order is added. Safe for concurrent
// use.
type tracker struct {
	windowStart, windowEnd time.Time

	mu       sync.Mutex
	orders   map[string]*order
	early    map[string]final
	inWindow int // final events of this run's orders that arrived in the window
}

func newTracker(windowStart, windowEnd time.Time) *tracker {
	return &tracker{windowStart: windowStart, windowEnd: windowEnd,
		orders: map[string]*order{}, early: map[string]final{}}
}

// placed records an order the shop accepted and returns it; its done channel
// is closed when its final event arrives.
func (t *tracker) placed(id string, sent time.Time) *order {
	o := &order{sent: sent, measured: !sent.Before(t.windowStart) && sent.Before(t.windowEnd), done: make(chan struct{})}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.orders[id] = o
	if f, ok := t.early[id]; ok {
		delete(t.early, id)
		t.resolve(o, f)
	}
	return o
}

// finished records the final event of order id.
func (t *tracker) finished(id string, f final) {
	t.mu.Lock()
	defer t.mu.Unlock()
	o, ok := t.orders[id]
	if !ok {
		t.early[id] = f
		return
	}
	t.resolve(o, f)
}

// resolve is called with t.mu held.
func (t *tracker) resolve(o *order, f final) {
	select {
	case <-o.done:
		return // a redelivered event: the first one counts
	default:
	}
	o.final = f
	close(o.done)
	if !f.arrived.Before(t.windowStart) && f.arrived.Before(t.windowEnd) {
		t.inWindow++
	}
}

// windowCompletions returns the final events that arrived in the window.
func (t *tracker) windowCompletions() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inWindow
}

// measuredOrders returns the orders sent in the window.
func (t *tracker) measuredOrders() []*order {
	t.mu.Lock()
	defer t.mu.Unlock()
	var os []*order
	for _, o := range t.orders {
		if o.measured {
			os = append(os, o)
		}
	}
	return os
}

// follow reads order.events from the current end of each of its partitions
// until ctx is done, passing every final event to t. The end offsets are
// read before follow returns, so no event of an order placed after that is
// missed. Each reader sends on the returned channel when it stops: nil when
// ctx was done, else why it stopped.
func follow(ctx context.Context, broker string, t *tracker) (stopped <-chan error, n int, err error) {
	conn, err := kafka.DialContext(ctx, "tcp", broker)
	if err != nil {
		return nil, 0, fmt.Errorf("dial broker: %w", err)
	}
	parts, err := conn.ReadPartitions(checkoutv1.TopicOrderEvents)
	conn.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("read partitions of %s: %w", checkoutv1.TopicOrderEvents, err)
	}
	if len(parts) == 0 {
		return nil, 0, fmt.Errorf("topic %s has no partitions", checkoutv1.TopicOrderEvents)
	}
	offsets := make([]int64, len(parts))
	for i, p := range parts {
		leader, err := kafka.DialLeader(ctx, "tcp", broker, checkoutv1.TopicOrderEvents, p.ID)
		if err != nil {
			return nil, 0, fmt.Errorf("dial partition %d: %w", p.ID, err)
		}
		offsets[i], err = leader.ReadLastOffset()
		leader.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("last offset of partition %d: %w", p.ID, err)
		}
	}
	errs := make(chan error, len(parts))
	var readers []*kafka.Reader
	for i, p := range parts {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:   []string{broker},
			Topic:     checkoutv1.TopicOrderEvents,
			Partition: p.ID,
			MinBytes:  1, // answer a fetch as soon as one event is there
			MaxBytes:  10 << 20,
			MaxWait:   500 * time.Millisecond,
		})
		// A new reader has not started fetching: SetOffset cannot fail.
		_ = r.SetOffset(offsets[i])
		readers = append(readers, r)
	}
	for _, r := range readers {
		go func() {
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() != nil {
						errs <- nil
					} else {
						errs <- fmt.Errorf("read %s: %w", checkoutv1.TopicOrderEvents, err)
					}
					return
				}
				arrived := time.Now()
				env, err := checkoutv1.Unmarshal(m.Value)
				if err != nil {
					continue // not ours to judge; the services' own consumers dead-letter it
				}
				switch env.GetPayload().(type) {
				case *checkoutv1.Envelope_OrderConfirmed:
					t.finished(checkoutv1.OrderID(env), final{arrived: arrived, occurred: env.GetOccurredAt().AsTime(), confirmed: true})
				case *checkoutv1.Envelope_OrderCancelled:
					t.finished(checkoutv1.OrderID(env), final{arrived: arrived, occurred: env.GetOccurredAt().AsTime()})
				}
			}
		}()
	}
	return errs, len(readers), nil
}
