package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// readsPath is what -reads requests: the first page of the catalog, through
// the gateway, as loadtest/wrk-products.sh does.
const readsPath = "/api/v1/products"

// reads is the outcome of -reads: the window's requests and the CPU the
// stack used for them.
type reads struct {
	window    time.Duration
	latencies []time.Duration // of the requests answered 200 in the window
	errors    int             // requests of the window not answered 200
	cpu       []cpuShare
}

// measureReads sends GET readsPath from -concurrency closed-loop workers,
// each sending its next request once the previous one was answered, for
// -warmup and then -duration, and measures the window: latencies, errors,
// and the CPU time each process of the stack used.
func measureReads(ctx context.Context, o options, launcherPID int, gateway string) (*reads, error) {
	client := newShop(gateway, o.concurrency).client
	get := func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, gateway+readsPath, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode == http.StatusOK, err
	}
	if ok, err := get(ctx); err != nil || !ok {
		return nil, fmt.Errorf("GET %s: ok %v, %v", readsPath, ok, err)
	}

	windowStart := time.Now().Add(o.warmup)
	windowEnd := windowStart.Add(o.duration)
	var (
		mu  sync.Mutex
		res = &reads{window: o.duration}
		wg  sync.WaitGroup
	)
	for range o.concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				sent := time.Now()
				if !sent.Before(windowEnd) {
					return
				}
				ok, err := get(ctx)
				took := time.Since(sent)
				if sent.Before(windowStart) {
					continue
				}
				mu.Lock()
				if ok && err == nil {
					res.latencies = append(res.latencies, took)
				} else {
					res.errors++
				}
				mu.Unlock()
			}
		})
	}
	if err := sleepUntil(ctx, windowStart); err != nil {
		return nil, err
	}
	before := sampleCPU(launcherPID, o.dir)
	if err := sleepUntil(ctx, windowEnd); err != nil {
		return nil, err
	}
	res.cpu = sampleCPU(launcherPID, o.dir).since(before)
	wg.Wait()
	slices.Sort(res.latencies)
	return res, ctx.Err()
}

// print writes the requests per second, the latency percentiles, and the
// CPU µs each process spent per request answered.
func (r *reads) print(w io.Writer) {
	n := len(r.latencies)
	fmt.Fprintf(w, "GET %s through the gateway: %.2f requests/s answered 200 (%d in the %s window), %d errors\n",
		readsPath, float64(n)/r.window.Seconds(), n, r.window, r.errors)
	if n == 0 {
		return
	}
	fmt.Fprintf(w, "latency: %s\n", summary(r.latencies))
	fmt.Fprint(w, "  CPU µs per request:")
	var total float64
	for _, c := range r.cpu {
		us := c.seconds * 1e6 / float64(n)
		total += us
		fmt.Fprintf(w, " %s %.0f,", c.name, us)
	}
	fmt.Fprintf(w, " total %.0f\n", total)
}
