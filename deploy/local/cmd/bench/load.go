package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// stockPerProduct is added to each product before the load: the most the
// admin API accepts in one adjustment, far more than a run places.
const stockPerProduct = 1_000_000

// counts are the outcomes of the POSTs sent in the measurement window. Safe
// for concurrent use.
type counts struct {
	mu        sync.Mutex
	submitted int            // POSTs sent
	errors    int            // POSTs not answered 202
	skipped   int            // open loop: arrivals not sent, -max-in-flight POSTs awaiting an answer
	byError   map[string]int // errors by kind
}

// maxErrorKinds bounds counts.byError.
const maxErrorKinds = 10

func (c *counts) add(sent, measured bool, err error) {
	if !measured {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sent {
		c.skipped++
		return
	}
	c.submitted++
	if err == nil {
		return
	}
	c.errors++
	kind := err.Error()
	if se, ok := errors.AsType[*statusError](err); ok {
		kind = fmt.Sprintf("%s %s = %d", se.method, se.path, se.status)
	}
	if len(kind) > 120 {
		kind = kind[:120]
	}
	if _, ok := c.byError[kind]; !ok && len(c.byError) >= maxErrorKinds {
		kind = "other"
	}
	if c.byError == nil {
		c.byError = map[string]int{}
	}
	c.byError[kind]++
}

// measure runs the load against the stack whose gateway is at gateway and
// whose broker is at broker, and returns what it measured. launcherPID is
// the launcher's: its descendants' CPU use, and PostgreSQL's, is sampled
// over the window. With -cost, the services' counters are read at the
// window's ends, and PostgreSQL's from pg if not nil.
func measure(ctx context.Context, o options, launcherPID int, pg *postgres, gateway, broker string) (*result, error) {
	conns := o.maxInFlight
	if o.rate == 0 {
		conns = o.concurrency
	}
	s := newShop(gateway, conns)
	var customers []string
	for _, u := range []string{"alice", "bob"} {
		tok, err := s.login(ctx, u, u+"-demo")
		if err != nil {
			return nil, fmt.Errorf("log in as %s: %w", u, err)
		}
		customers = append(customers, tok)
	}
	admin, err := s.login(ctx, "admin", "admin-demo")
	if err != nil {
		return nil, fmt.Errorf("log in as admin: %w", err)
	}
	skus, err := s.inStock(ctx, o.products)
	if err != nil {
		return nil, err
	}
	for _, sku := range skus {
		if err := s.restock(ctx, admin, sku, stockPerProduct); err != nil {
			return nil, fmt.Errorf("restock %s: %w", sku, err)
		}
	}

	// The tracker needs the window before the readers start; the readers
	// start before the first order.
	readCtx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	start := time.Now().Add(time.Second)
	windowStart := start.Add(o.warmup)
	windowEnd := windowStart.Add(o.duration)
	t := newTracker(windowStart, windowEnd)
	readersStopped, readers, err := follow(readCtx, broker, t)
	if err != nil {
		return nil, err
	}

	var atStart, atEnd sample
	var sampleErr error
	sampled := make(chan struct{})
	profiled := make(chan error, 1)
	var profiles []string
	go func() {
		defer close(sampled)
		if sleepUntil(ctx, windowStart) != nil {
			profiled <- nil
			return
		}
		if o.profileDir != "" {
			go func() {
				var err error
				profiles, err = fetchProfiles(ctx, o.profileDir, o.adminAddrs, o.duration)
				profiled <- err
			}()
		} else {
			profiled <- nil
		}
		if atStart, sampleErr = takeSample(ctx, o, launcherPID, pg, true); sampleErr != nil {
			return
		}
		if sleepUntil(ctx, windowEnd) != nil {
			return
		}
		atEnd, sampleErr = takeSample(ctx, o, launcherPID, pg, false)
	}()

	var c counts
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)
	place := func(n int64) (*order, error) {
		key := "bench-" + runID + "-" + strconv.FormatInt(n, 10)
		sent := time.Now()
		id, err := s.placeOrder(ctx, customers[n%int64(len(customers))], key, skus[n%int64(len(skus))])
		measured := !sent.Before(windowStart) && sent.Before(windowEnd)
		c.add(true, measured, err)
		if err != nil {
			return nil, err
		}
		return t.placed(id, sent), nil
	}

	if err := sleepUntil(ctx, start); err != nil {
		return nil, err
	}
	if o.rate > 0 {
		openLoop(ctx, o, start, windowEnd, place, &c)
	} else {
		closedLoop(ctx, o, windowEnd, place)
	}

	// Wait for the orders sent in the window, up to -drain.
	deadline := time.NewTimer(time.Until(windowEnd.Add(o.drain)))
	defer deadline.Stop()
	measured := t.measuredOrders()
wait:
	for _, ord := range measured {
		select {
		case <-ord.done:
		case <-deadline.C:
			break wait
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	<-sampled
	if err := errors.Join(sampleErr, <-profiled); err != nil {
		return nil, err
	}
	stopReading()
	var readErrs []error
	for range readers {
		readErrs = append(readErrs, <-readersStopped)
	}
	if err := errors.Join(readErrs...); err != nil {
		return nil, err
	}

	res := &result{opts: o, products: len(skus), cpu: atEnd.cpu.since(atStart.cpu), profiles: profiles}
	res.completions = t.windowCompletions()
	if o.cost {
		res.cost = atEnd.minus(atStart, res.completions, o)
	}
	c.mu.Lock()
	res.submitted, res.errors, res.skipped, res.byError = c.submitted, c.errors, c.skipped, c.byError
	c.mu.Unlock()
	for _, ord := range measured {
		select {
		case <-ord.done:
		default:
			res.unfinished++
			continue
		}
		if ord.final.confirmed {
			res.confirmed++
		} else {
			res.cancelled++
		}
		res.toArrival = append(res.toArrival, ord.final.arrived.Sub(ord.sent))
		res.toOccurred = append(res.toOccurred, ord.final.occurred.Sub(ord.sent))
	}
	return res, nil
}

// openLoop sends the i-th order at start + i/rate until end, each in its own
// goroutine, whether or not earlier ones have been answered. An arrival that
// finds -max-in-flight POSTs unanswered is skipped and counted, which bounds
// the goroutines and connections when the shop stops answering. It returns
// when every POST sent has been answered.
func openLoop(ctx context.Context, o options, start, end time.Time, place func(int64) (*order, error), c *counts) {
	inFlight := make(chan struct{}, o.maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := int64(0); ; i++ {
		at := start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))
		if !at.Before(end) || sleepUntil(ctx, at) != nil {
			return
		}
		select {
		case inFlight <- struct{}{}:
			wg.Go(func() {
				defer func() { <-inFlight }()
				_, _ = place(i) // counted by place
			})
		default:
			now := time.Now()
			c.add(false, !now.Before(end.Add(-o.duration)) && now.Before(end), nil)
		}
	}
}

// closedLoop runs -concurrency workers until end, each placing an order and
// waiting for its final event (at most -drain) before placing the next.
func closedLoop(ctx context.Context, o options, end time.Time, place func(int64) (*order, error)) {
	var seq atomic.Int64
	var wg sync.WaitGroup
	defer wg.Wait()
	for range o.concurrency {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				ord, err := place(seq.Add(1))
				if err != nil {
					// Do not spin on a shop that refuses everything.
					_ = sleepUntil(ctx, time.Now().Add(10*time.Millisecond))
					continue
				}
				timeout := time.NewTimer(o.drain)
				select {
				case <-ord.done:
				case <-timeout.C:
				case <-ctx.Done():
				}
				timeout.Stop()
			}
		})
	}
}

// sleepUntil waits until t or until ctx is done, whichever is first.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
