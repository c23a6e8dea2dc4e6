package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Test cards of the PSP simulator.
const (
	cardSucceeds     = "4242424242424242"
	cardDeclined     = "4000000000000002"
	cardInsufficient = "4000000000009995"
	cardHangs        = "4000000000000259"
)

// lowStock is the most a product may have to count as low-stock: orders
// for these run out, and are refused with StockRejected.
const lowStock = 3

// client is the harness's HTTP client of the gateway.
type client struct {
	base string
	http *http.Client
}

// errRetry marks an answer worth retrying with the same request.
var errRetry = errors.New("retryable")

// do sends one request; a 5xx, a 429 and a transport error wrap errRetry.
func (c *client) do(ctx context.Context, method, path, token, key string, body any, out any) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %s: %w", errRetry, method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return resp.StatusCode, fmt.Errorf("%w: %s %s: %d %s", errRetry, method, path, resp.StatusCode, data)
	case resp.StatusCode >= 300:
		return resp.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// retry calls c.do until it succeeds, fails for good, or ctx ends, backing
// off between retryable failures. It returns the number of retries.
func (c *client) retry(ctx context.Context, method, path, token, key string, body, out any) (int, error) {
	wait := 50 * time.Millisecond
	for retries := 0; ; retries++ {
		_, err := c.do(ctx, method, path, token, key, body, out)
		if err == nil || !errors.Is(err, errRetry) {
			return retries, err
		}
		select {
		case <-ctx.Done():
			return retries, fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (c *client) login(ctx context.Context, user string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_, err := c.retry(ctx, http.MethodPost, "/api/v1/login", "", "",
		map[string]string{"username": user, "password": user + "-demo"}, &tok)
	if err == nil && tok.AccessToken == "" {
		err = fmt.Errorf("login %s: no access token", user)
	}
	return tok.AccessToken, err
}

// restock adds delta units of each of skus through the admin API.
func (c *client) restock(ctx context.Context, admin string, skus []string, delta int64) error {
	for _, sku := range skus {
		_, err := c.retry(ctx, http.MethodPost, "/api/v1/admin/products/"+sku+"/stock-adjustments", admin, "",
			map[string]int64{"delta": delta}, nil)
		if err != nil {
			return fmt.Errorf("restock %s: %w", sku, err)
		}
	}
	return nil
}

// checkout is one order the harness places.
type checkout struct {
	key      string
	card     string
	sku      string
	quantity int64
	customer int // index into the tokens
}

// plan draws order i of the mix from seed: its card and its product.
func plan(seed uint64, i int, plenty, low []string) checkout {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	c := checkout{key: "chaos-" + strconv.FormatUint(seed, 36) + "-" + strconv.Itoa(i), card: cardSucceeds, quantity: 1, customer: rng.IntN(2)}
	c.sku = plenty[rng.IntN(len(plenty))]
	switch n := rng.IntN(100); {
	case n < 70:
	case n < 80:
		c.card = cardDeclined
	case n < 85:
		c.card = cardInsufficient
	case n < 90:
		c.card = cardHangs
	default:
		if len(low) > 0 {
			c.sku = low[rng.IntN(len(low))]
		}
	}
	if c.card == cardSucceeds && rng.IntN(4) == 0 {
		c.quantity = 2
	}
	return c
}

// driveResult is what placing the orders produced.
type driveResult struct {
	ids     map[string]checkout // order id → what was asked
	retries int64
	failed  []error // orders never accepted
}

// drive places n orders with concurrency workers, starting one every pace
// at most, calling progress after each. Each POST is retried with its
// Idempotency-Key until accepted.
func drive(ctx context.Context, c *client, tokens []string, n, concurrency int, pace time.Duration, seed uint64, plenty, low []string, progress func()) *driveResult {
	res := &driveResult{ids: map[string]checkout{}}
	var mu sync.Mutex
	var retries atomic.Int64
	next := make(chan int)
	var workers sync.WaitGroup
	for range concurrency {
		workers.Go(func() {
			for i := range next {
				co := plan(seed, i, plenty, low)
				body := map[string]any{"card_number": co.card,
					"lines": []map[string]any{{"sku": co.sku, "quantity": co.quantity}}}
				var o struct{ ID string }
				octx, cancel := context.WithTimeout(ctx, 3*time.Minute)
				r, err := c.retry(octx, http.MethodPost, "/api/v1/orders", tokens[co.customer], co.key, body, &o)
				cancel()
				retries.Add(int64(r))
				mu.Lock()
				switch {
				case err != nil:
					res.failed = append(res.failed, fmt.Errorf("order %s: %w", co.key, err))
				case o.ID == "":
					res.failed = append(res.failed, fmt.Errorf("order %s: accepted without an id", co.key))
				default:
					res.ids[o.ID] = co
				}
				mu.Unlock()
				progress()
			}
		})
	}
	var tick <-chan time.Time
	if pace > 0 {
		t := time.NewTicker(pace)
		defer t.Stop()
		tick = t.C
	}
	for i := range n {
		if tick != nil {
			select {
			case <-tick:
			case <-ctx.Done():
			}
		}
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	workers.Wait()
	res.retries = retries.Load()
	return res
}
