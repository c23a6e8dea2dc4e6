package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// goodCard is the PSP simulator's test card that is always charged.
const goodCard = "4242424242424242"

// shop is a client of the gateway's public API.
type shop struct {
	base   string // e.g. http://127.0.0.1:8080
	client *http.Client
}

func newShop(base string, conns int) *shop {
	return &shop{base: base, client: &http.Client{
		Timeout: 30 * time.Second,
		// Keep as many idle connections as there can be requests in
		// flight, so load does not turn into connection churn.
		Transport: &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute},
	}}
}

// statusError is an answer with another status than the one expected.
type statusError struct {
	method, path string
	status       int
	body         string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s = %d %s", e.method, e.path, e.status, e.body)
}

// do sends a JSON request and decodes a JSON answer with status want into
// out (if not nil).
func (s *shop) do(ctx context.Context, method, path, token string, header map[string]string, in, out any, want int) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		if len(b) > 200 {
			b = b[:200]
		}
		return &statusError{method: method, path: path, status: resp.StatusCode, body: string(b)}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (s *shop) login(ctx context.Context, user, password string) (string, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err := s.do(ctx, "POST", "/api/v1/login", "", nil, map[string]string{"username": user, "password": password}, &tok, http.StatusOK)
	return tok.AccessToken, err
}

// inStock returns up to n SKUs of products in stock.
func (s *shop) inStock(ctx context.Context, n int) ([]string, error) {
	var page struct {
		Items []struct{ SKU string }
	}
	if err := s.do(ctx, "GET", fmt.Sprintf("/api/v1/products?in_stock=true&limit=%d", n), "", nil, nil, &page, http.StatusOK); err != nil {
		return nil, err
	}
	var skus []string
	for _, p := range page.Items {
		skus = append(skus, p.SKU)
	}
	if len(skus) == 0 {
		return nil, fmt.Errorf("no product in stock")
	}
	return skus, nil
}

func (s *shop) restock(ctx context.Context, adminToken, sku string, delta int) error {
	return s.do(ctx, "POST", "/api/v1/admin/products/"+url.PathEscape(sku)+"/stock-adjustments", adminToken, nil,
		map[string]int{"delta": delta}, nil, http.StatusOK)
}

// placeOrder posts an order of one unit of sku paid with the good card and
// returns the new order's id.
func (s *shop) placeOrder(ctx context.Context, token, idempotencyKey, sku string) (string, error) {
	type line struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
	}
	in := struct {
		CardNumber string `json:"card_number"`
		Lines      []line `json:"lines"`
	}{goodCard, []line{{sku, 1}}}
	var created struct{ ID string }
	err := s.do(ctx, "POST", "/api/v1/orders", token, map[string]string{"Idempotency-Key": idempotencyKey}, in, &created, http.StatusAccepted)
	if err == nil && created.ID == "" {
		err = fmt.Errorf("POST /api/v1/orders: 202 without an order id")
	}
	return created.ID, err
}
