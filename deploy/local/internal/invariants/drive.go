package invariants

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/microshop/microshop/services/psp/simulator"
)

// Test cards of the PSP simulator, named for the mix.
const (
	cardSucceeds     = simulator.CardSucceeds
	cardDeclined     = simulator.CardDeclined
	cardInsufficient = simulator.CardInsufficientFunds
	cardHangs        = simulator.CardHangs
)

// lowStock is the most a product may have to count as low-stock: orders
// for these run out, and are refused with StockRejected.
const lowStock = 3

// Client is a harness's HTTP client of the gateway.
type Client struct {
	base string
	http *http.Client
}

// NewClient returns a client of the gateway at base (http://host:port),
// whose requests time out after timeout.
func NewClient(base string, timeout time.Duration) *Client {
	return &Client{base: base, http: &http.Client{Timeout: timeout}}
}

// errRetry marks an answer worth retrying with the same request.
var errRetry = errors.New("retryable")

// Do sends one request; a 5xx, a 429 and a transport error wrap errRetry.
func (c *Client) Do(ctx context.Context, method, path, token, key string, body any, out any) (int, error) {
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		reader = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, reader)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
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

// Retry calls c.Do until it succeeds, fails for good, or ctx ends, backing
// off between retryable failures. It returns the number of retries.
func (c *Client) Retry(ctx context.Context, method, path, token, key string, body, out any) (int, error) {
	wait := 50 * time.Millisecond
	for retries := 0; ; retries++ {
		_, err := c.Do(ctx, method, path, token, key, body, out)
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

// Customer is a user the harness places orders as.
type Customer struct {
	Token string
	// ID is the customer id the gateway puts on the user's orders: the
	// subject of the access token.
	ID string
}

// Login logs user in and returns its token and customer id.
func (c *Client) Login(ctx context.Context, user string) (Customer, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_, err := c.Retry(ctx, http.MethodPost, "/api/v1/login", "", "",
		map[string]string{"username": user, "password": user + "-demo"}, &tok)
	if err != nil {
		return Customer{}, err
	}
	id, err := tokenSubject(tok.AccessToken)
	if err != nil {
		return Customer{}, fmt.Errorf("login %s: %w", user, err)
	}
	return Customer{Token: tok.AccessToken, ID: id}, nil
}

// tokenSubject returns the subject of a JWT without verifying it: the
// harness only needs to know whom the gateway took it for.
func tokenSubject(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("the access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("access token: %w", err)
	}
	var claims struct {
		Subject string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Subject == "" {
		return "", fmt.Errorf("access token without a subject: %v", err)
	}
	return claims.Subject, nil
}

// Catalog reads every product of the catalog, page by page.
func (c *Client) Catalog(ctx context.Context) (map[string]Product, error) {
	products := map[string]Product{}
	cursor := ""
	for {
		var page struct {
			Items      []Product `json:"items"`
			NextCursor string    `json:"next_cursor"`
		}
		path := "/api/v1/products?limit=100"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if _, err := c.Retry(ctx, http.MethodGet, path, "", "", nil, &page); err != nil {
			return nil, fmt.Errorf("read the catalog: %w", err)
		}
		for _, p := range page.Items {
			products[p.SKU] = p
		}
		if page.NextCursor == "" {
			return products, nil
		}
		cursor = page.NextCursor
	}
}

// Restock adds delta units of each of skus through the admin API.
func (c *Client) Restock(ctx context.Context, admin string, skus []string, delta int64) error {
	for _, sku := range skus {
		_, err := c.Retry(ctx, http.MethodPost, "/api/v1/admin/products/"+sku+"/stock-adjustments", admin, "",
			map[string]int64{"delta": delta}, nil)
		if err != nil {
			return fmt.Errorf("restock %s: %w", sku, err)
		}
	}
	return nil
}

// Checkout is one order the harness places: what it asks for, recorded
// before it asks (the checker's ground truth).
type Checkout struct {
	key        string
	card       string
	sku        string
	quantity   int64
	customer   int    // index into the customers
	customerID string // the customer's id, the subject of its token
}

// plan draws order i of the mix from seed: its card and its product.
func plan(seed uint64, i int, plenty, low []string) Checkout {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	c := Checkout{key: "chaos-" + strconv.FormatUint(seed, 36) + "-" + strconv.Itoa(i), card: cardSucceeds, quantity: 1, customer: rng.IntN(2)}
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
type DriveResult struct {
	Requests map[string]Checkout // by Idempotency-Key: every checkout asked for
	IDs      map[string]string   // order id → the key the gateway answered it for
	Retries  int64
	Failed   []error // orders never accepted
}

// Load is how many checkouts Drive places and how.
type Load struct {
	Orders      int
	Concurrency int           // checkouts in flight at once
	Pace        time.Duration // at most one started every Pace; 0 for no pacing
	// Seed draws the mix: ~70 % good card, 10 % declined, 5 % insufficient
	// funds, 5 % the card whose charge hangs, 10 % a low-stock product.
	Seed     uint64
	Progress func() // called after each order, if set
}

// Drive places l.Orders orders of shop's products as its customers with
// l.Concurrency workers. Each POST is retried with its Idempotency-Key
// until accepted; each checkout is recorded before it is asked for.
func Drive(ctx context.Context, c *Client, shop Shop, l Load) *DriveResult {
	customers, plenty, low, seed := shop.Customers, shop.Plenty, shop.Low, l.Seed
	n, concurrency, pace := l.Orders, l.Concurrency, l.Pace
	progress := l.Progress
	if progress == nil {
		progress = func() {}
	}
	res := &DriveResult{Requests: map[string]Checkout{}, IDs: map[string]string{}}
	var mu sync.Mutex
	var retries atomic.Int64
	next := make(chan int)
	var workers sync.WaitGroup
	for range concurrency {
		workers.Go(func() {
			for i := range next {
				co := plan(seed, i, plenty, low)
				co.customerID = customers[co.customer].ID
				mu.Lock()
				res.Requests[co.key] = co
				mu.Unlock()
				body := map[string]any{"card_number": co.card,
					"lines": []map[string]any{{"sku": co.sku, "quantity": co.quantity}}}
				var o struct{ ID string }
				octx, cancel := context.WithTimeout(ctx, 3*time.Minute)
				r, err := c.Retry(octx, http.MethodPost, "/api/v1/orders", customers[co.customer].Token, co.key, body, &o)
				cancel()
				retries.Add(int64(r))
				mu.Lock()
				switch {
				case err != nil:
					res.Failed = append(res.Failed, fmt.Errorf("order %s: %w", co.key, err))
				case o.ID == "":
					res.Failed = append(res.Failed, fmt.Errorf("order %s: accepted without an id", co.key))
				default:
					res.IDs[o.ID] = co.key
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
	res.Retries = retries.Load()
	return res
}
