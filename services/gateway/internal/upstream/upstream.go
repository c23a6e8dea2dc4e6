// Package upstream calls the internal HTTP APIs of the services behind the
// gateway (inventory, order, the payment provider simulator's admin API).
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/microshop/microshop/pkg/httpserver"
)

// ErrUnavailable wraps a failure to get any answer from the upstream
// (connection refused, reset, timeout); the gateway answers 502 or 504.
var ErrUnavailable = errors.New("upstream unavailable")

// MaxResponse bounds how much of an upstream's answer the gateway reads.
const MaxResponse = 4 << 20

// Client calls one upstream. It is safe for concurrent use.
type Client struct {
	// Name names the upstream in errors and logs, e.g. "inventory".
	Name string
	base *url.URL
	http *http.Client
}

// New returns a Client for the service at baseURL whose requests each time
// out after timeout, sent through transport (nil: http.DefaultTransport;
// the gateway passes a traced and measured one, telemetry.Transport).
func New(name, baseURL string, timeout time.Duration, transport http.RoundTripper) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s upstream URL %q is not an http(s) URL", name, baseURL)
	}
	return &Client{Name: name, base: u, http: &http.Client{Timeout: timeout, Transport: transport}}, nil
}

// Response is an upstream's complete answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends method path?query with body JSON-encoded (nil sends none) and
// reads the whole answer. The request id in ctx (httpserver.RequestID), if
// any, goes along as X-Request-Id. Any answer, whatever its status, is a Response; an
// error wraps ErrUnavailable.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, header http.Header, body any) (Response, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Response{}, fmt.Errorf("encode %s request: %w", c.Name, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return Response{}, fmt.Errorf("build %s request: %w", c.Name, err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if id := httpserver.RequestID(ctx); id != "" {
		req.Header.Set(httpserver.RequestIDHeader, id) // one id in every access log the request crosses
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return Response{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, c.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if err != nil {
		return Response{}, fmt.Errorf("%w: %s: read answer: %w", ErrUnavailable, c.Name, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}
