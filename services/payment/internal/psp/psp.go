// Package psp is the payment service's client of the payment service
// provider's HTTP API (services/psp simulates it). It implements
// payment.PSP: every answer becomes a domain result, and every failure one
// of the outcomes the domain can act on.
//
// The one that matters is ambiguity. A request that timed out, lost its
// connection, or got a 5xx, 408 or 429 may or may not have taken effect, so
// it is payment.ErrPSPAmbiguous; only an explicit 4xx refusal
// (*payment.RejectedError) proves that nothing happened. A lookup by
// idempotency key is stricter still: anything but 200 or 404 is ambiguous.
//
// A request the circuit breaker around the transport refused was never
// sent: it is payment.ErrPSPUnavailable as well as ambiguous, since only the
// caller knows whether an earlier attempt under the same key was sent.
package psp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/payment/internal/payment"
)

// maxAnswer bounds how much of an answer is read.
const maxAnswer = 1 << 20

// Client calls the PSP at one base URL. Create it with New; it is safe for
// concurrent use.
type Client struct {
	baseURL string
	timeout time.Duration
	http    *http.Client
}

var _ payment.PSP = (*Client)(nil)

// New returns a client of the PSP at baseURL (e.g. http://127.0.0.1:8090)
// whose every request gives up after timeout. Requests go through wrap's
// transport, given a connection pool of the client's own: the service passes
// a traced and measured wrapper (telemetry.Transport); nil wraps nothing.
func New(baseURL string, timeout time.Duration, wrap func(http.RoundTripper) http.RoundTripper) *Client {
	var transport http.RoundTripper = http.DefaultTransport.(*http.Transport).Clone()
	if wrap != nil {
		transport = wrap(transport)
	}
	return &Client{
		baseURL: strings.TrimRight(baseURL, "/"),
		timeout: timeout,
		http:    &http.Client{Transport: transport},
	}
}

// Close closes the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// chargeJSON is the PSP's charge, as much of it as the client reads.
type chargeJSON struct {
	ID          string `json:"id"`
	Status      string `json:"status"`
	DeclineCode string `json:"decline_code"`
}

func (ch chargeJSON) domain() (payment.PSPCharge, error) {
	switch {
	case ch.ID == "":
		return payment.PSPCharge{}, fmt.Errorf("%w: charge without an id", payment.ErrPSPAmbiguous)
	case ch.Status == "succeeded":
		return payment.PSPCharge{Reference: ch.ID}, nil
	case ch.Status == "declined":
		return payment.PSPCharge{Reference: ch.ID, Declined: true, DeclineCode: ch.DeclineCode}, nil
	default:
		return payment.PSPCharge{}, fmt.Errorf("%w: charge status %q", payment.ErrPSPAmbiguous, ch.Status)
	}
}

// refundJSON is the PSP's refund, as much of it as the client reads.
type refundJSON struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

func (r refundJSON) domain() (payment.PSPRefund, error) {
	if r.ID == "" || r.Status != "succeeded" {
		return payment.PSPRefund{}, fmt.Errorf("%w: refund %q with status %q", payment.ErrPSPAmbiguous, r.ID, r.Status)
	}
	return payment.PSPRefund{Reference: r.ID}, nil
}

// Charge implements payment.PSP: POST /v1/charges.
func (c *Client) Charge(ctx context.Context, a payment.ChargeAttempt) (payment.PSPCharge, error) {
	body := struct {
		Amount     int64  `json:"amount"`
		Currency   string `json:"currency"`
		CardNumber string `json:"card_number"`
	}{a.Amount.Minor, a.Amount.Currency, a.CardNumber}
	var ch chargeJSON
	if err := c.create(ctx, "/v1/charges", a.IdempotencyKey, body, &ch); err != nil {
		return payment.PSPCharge{}, fmt.Errorf("charge: %w", err)
	}
	return ch.domain()
}

// ChargeStatus implements payment.PSP: GET /v1/charges?idempotency_key=.
func (c *Client) ChargeStatus(ctx context.Context, key string) (payment.PSPCharge, error) {
	var ch chargeJSON
	if err := c.lookup(ctx, "/v1/charges", key, &ch); err != nil {
		return payment.PSPCharge{}, fmt.Errorf("charge status: %w", err)
	}
	return ch.domain()
}

// Refund implements payment.PSP: POST /v1/refunds.
func (c *Client) Refund(ctx context.Context, a payment.RefundAttempt) (payment.PSPRefund, error) {
	body := struct {
		ChargeID string `json:"charge_id"`
		Amount   int64  `json:"amount"`
	}{a.ChargeReference, a.Amount.Minor}
	var r refundJSON
	if err := c.create(ctx, "/v1/refunds", a.IdempotencyKey, body, &r); err != nil {
		return payment.PSPRefund{}, fmt.Errorf("refund: %w", err)
	}
	return r.domain()
}

// RefundStatus implements payment.PSP: GET /v1/refunds?idempotency_key=.
func (c *Client) RefundStatus(ctx context.Context, key string) (payment.PSPRefund, error) {
	var r refundJSON
	if err := c.lookup(ctx, "/v1/refunds", key, &r); err != nil {
		return payment.PSPRefund{}, fmt.Errorf("refund status: %w", err)
	}
	return r.domain()
}

// create POSTs in under an idempotency key and decodes a 2xx answer into out.
func (c *Client) create(ctx context.Context, path, key string, in, out any) error {
	status, answer, err := c.send(ctx, http.MethodPost, path, key, in)
	switch {
	case err != nil:
		return err
	case status >= 200 && status <= 299:
		return decode(answer, out)
	case status == http.StatusConflict:
		return fmt.Errorf("%w: %s", payment.ErrIdempotencyConflict, reason(status, answer))
	case status == http.StatusRequestTimeout, status == http.StatusTooManyRequests, status >= 500:
		return fmt.Errorf("%w: %s", payment.ErrPSPAmbiguous, reason(status, answer))
	case status >= 400 && status <= 499:
		return &payment.RejectedError{Reason: reason(status, answer)}
	default: // 1xx, 3xx: not an answer this API gives
		return fmt.Errorf("%w: %s", payment.ErrPSPAmbiguous, reason(status, answer))
	}
}

// lookup GETs what was created under an idempotency key into out.
func (c *Client) lookup(ctx context.Context, path, key string, out any) error {
	status, answer, err := c.send(ctx, http.MethodGet, path+"?"+url.Values{"idempotency_key": {key}}.Encode(), "", nil)
	switch {
	case err != nil:
		return err
	case status == http.StatusOK:
		return decode(answer, out)
	case status == http.StatusNotFound:
		return payment.ErrPSPNotFound
	default: // even a 4xx says nothing about what exists under the key
		return fmt.Errorf("%w: %s", payment.ErrPSPAmbiguous, reason(status, answer))
	}
}

// send makes one request within the client's timeout and returns the
// answer's status and body. Its only errors are building the request
// (nothing sent) and, ambiguous, everything after.
func (c *Client) send(ctx context.Context, method, path, key string, in any) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.baseURL+path, body)
	if err != nil {
		return 0, nil, fmt.Errorf("build %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		// net/http may resend a request carrying this header on a reused
		// connection that failed; the key makes that safe.
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if errors.Is(err, breaker.ErrOpen) {
		// Nothing was sent. Still ambiguous to every caller but the one
		// that knows no earlier attempt can have reached the PSP.
		return 0, nil, fmt.Errorf("%w: %w: %s %s: %w", payment.ErrPSPAmbiguous, payment.ErrPSPUnavailable, method, path, err)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s %s: %w", payment.ErrPSPAmbiguous, method, path, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, fmt.Errorf("%w: %s %s: read answer: %w", payment.ErrPSPAmbiguous, method, path, err)
	}
	return resp.StatusCode, answer, nil
}

// decode reads a success answer; one that does not parse is ambiguous.
func decode(answer []byte, out any) error {
	if err := json.Unmarshal(answer, out); err != nil {
		return fmt.Errorf("%w: undecodable answer: %w", payment.ErrPSPAmbiguous, err)
	}
	return nil
}

// reason summarises an error answer: its problem details when it has them,
// such as "card_number: must be 12 to 19 digits passing the Luhn check".
func reason(status int, answer []byte) string {
	var p problem.Details
	if err := json.Unmarshal(answer, &p); err != nil || p.Status == 0 {
		return fmt.Sprintf("HTTP %d", status)
	}
	if len(p.Errors) > 0 {
		parts := make([]string, len(p.Errors))
		for i, e := range p.Errors {
			parts[i] = e.Field + ": " + e.Message
		}
		return strings.Join(parts, "; ")
	}
	if p.Detail != "" {
		return p.Detail
	}
	return fmt.Sprintf("HTTP %d %s", status, p.Title)
}
