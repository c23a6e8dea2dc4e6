// Package upstream calls the internal HTTP APIs of the services behind the
// gateway (inventory, order, the payment provider simulator's admin API).
//
// Each request goes to one instance of its service, picked per attempt by a
// discovery.Balancer (Consul's healthy instances in the full mode, the
// configured URL's host in the embedded one). A request that failed in a
// way that leaves it safe to send again is retried once or twice on
// another instance, within a retry budget — see [Retries] — so that a
// restarting or crashed instance costs its callers nothing, and a sick
// service is not hit with more than a bounded share of extra requests.
package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/discovery"
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
	Name      string
	base      *url.URL // scheme and path prefix; the host is the instance's
	instances *discovery.Balancer
	retries   *Retries // nil: no retry
	budget    *budget
	http      *http.Client
}

// New returns a Client for the one instance at baseURL, which never
// retries: the payment provider's (a third party, at a configured URL), or
// a service's in tests. Its requests each time out after timeout and go
// through wrap's transport (nil wraps nothing).
func New(name, baseURL string, timeout time.Duration, wrap func(http.RoundTripper) http.RoundTripper) (*Client, error) {
	u, err := parseBase(name, baseURL)
	if err != nil {
		return nil, err
	}
	return NewBalanced(name, baseURL, discovery.NewBalancer(name, discovery.NewStaticResolver(u.Host)), timeout, wrap, nil)
}

// NewBalanced returns a Client whose every attempt goes to the instance
// instances picks, with baseURL's scheme and path (its host is not used).
// Requests time out after timeout per attempt and go through wrap's
// transport (nil wraps nothing), around a connection pool of the client's
// own. retries, if not nil, is the retry policy; nil never retries.
func NewBalanced(name, baseURL string, instances *discovery.Balancer, timeout time.Duration, wrap func(http.RoundTripper) http.RoundTripper, retries *Retries) (*Client, error) {
	u, err := parseBase(name, baseURL)
	if err != nil {
		return nil, err
	}
	var transport http.RoundTripper = attempts{http.DefaultTransport.(*http.Transport).Clone()}
	if wrap != nil {
		transport = wrap(transport)
	}
	c := &Client{Name: name, base: u, instances: instances, retries: retries, http: &http.Client{Timeout: timeout, Transport: transport}}
	if retries != nil {
		c.budget = newBudget(retries.Ratio, retries.Reserve)
	}
	return c, nil
}

func parseBase(name, baseURL string) (*url.URL, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%s upstream URL %q is not an http(s) URL", name, baseURL)
	}
	return u, nil
}

// Response is an upstream's complete answer.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends method path?query with body JSON-encoded (nil sends none) and
// reads the whole answer. The request id in ctx (httpserver.RequestID), if
// any, goes along as X-Request-Id. Any answer, whatever its status, is a
// Response; an error wraps ErrUnavailable (and breaker.ErrOpen when the
// upstream's breaker refused the call, discovery.ErrNoInstance when no
// instance is known).
//
// With a retry policy, an attempt that failed retryably (see Retries) is
// sent again to an instance not tried yet, if the budget allows; the last
// attempt's outcome is returned.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, header http.Header, body any) (Response, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return Response{}, fmt.Errorf("encode %s request: %w", c.Name, err)
		}
	}
	if c.budget != nil {
		c.budget.deposit()
	}
	var (
		tried []string // ids of the instances tried
		resp  Response
		err   error
	)
	for attempt := range maxAttempts {
		var reason string
		if attempt > 0 {
			if reason = retryable(ctx, method, header, resp, err); c.retries == nil || reason == "" {
				break
			}
		}
		in, done, pickErr := c.instances.Pick(tried...)
		if pickErr != nil && attempt == 0 {
			return Response{}, fmt.Errorf("%w: %w", ErrUnavailable, pickErr)
		}
		if pickErr != nil {
			break // no other instance to try
		}
		if attempt > 0 && !c.budget.withdraw() {
			done()
			c.retries.count(c.Name, "budget exhausted")
			break
		}
		if attempt > 0 {
			c.retries.count(c.Name, reason)
		}
		resp, err = c.send(ctx, in.Addr, attempt, method, path, query, header, b)
		done()
		if err != nil && connectionFailure(err) {
			c.instances.Eject(in.ID, ejectFor)
		}
		tried = append(tried, in.ID)
	}
	return resp, err
}

// send makes one attempt at the instance at addr.
func (c *Client) send(ctx context.Context, addr string, attempt int, method, path string, query url.Values, header http.Header, body []byte) (Response, error) {
	u := c.base.JoinPath(path)
	u.Host = addr
	u.RawQuery = query.Encode()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, attemptKey{}, attempt), method, u.String(), r)
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
		return Response{}, fmt.Errorf("%w: %s at %s: %w", ErrUnavailable, c.Name, addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
	if err != nil {
		return Response{}, fmt.Errorf("%w: %s: read answer: %w", ErrUnavailable, c.Name, err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// maxAttempts bounds the attempts of one request: the first and two retries.
const maxAttempts = 3

// ejectFor is how long an instance that refused or broke a connection is
// skipped by the balancer: a few of Consul's check intervals, the time its
// checks take to turn a dead instance critical (discovery.Balancer.Eject).
const ejectFor = 5 * time.Second

// connectionFailure reports whether err is an attempt that got no answer
// because no connection was made or it broke — not a timeout (the instance
// may be busy, not dead), not the breaker, not the caller giving up.
func connectionFailure(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, breaker.ErrOpen), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &netErr) && netErr.Timeout():
		return false
	}
	return errors.Is(err, ErrUnavailable)
}

// retryable says why a request may be sent again to another instance, or
// "" if it may not. Only a safe request is retried — GET, HEAD, or POST with
// an Idempotency-Key, which the service deduplicates — and only when the
// attempt got no answer because no connection was made or it broke
// ("connection failure"), or got a 503: an instance draining or otherwise
// unable to serve now. A timeout is not retried: the instance may still be
// working on it, and sending more work to a slow service is how retry
// storms start. Neither is a refusal by the breaker, nor a request its
// caller gave up.
func retryable(ctx context.Context, method string, header http.Header, resp Response, err error) string {
	safe := method == http.MethodGet || method == http.MethodHead ||
		(method == http.MethodPost && header.Get("Idempotency-Key") != "")
	switch {
	case !safe || ctx.Err() != nil:
		return ""
	case err == nil && resp.Status == http.StatusServiceUnavailable:
		return "503"
	case err == nil, errors.Is(err, discovery.ErrNoInstance), !connectionFailure(err):
		return ""
	default:
		return "connection failure"
	}
}

type attemptKey struct{}

// attempts marks the client span of a retry (the span the traced transport
// around it started) with http.request.resend_count, OpenTelemetry's
// attribute for "this is the n-th resend".
type attempts struct{ next http.RoundTripper }

func (a attempts) RoundTrip(req *http.Request) (*http.Response, error) {
	if n, _ := req.Context().Value(attemptKey{}).(int); n > 0 {
		trace.SpanFromContext(req.Context()).SetAttributes(attribute.Int("http.request.resend_count", n))
	}
	return a.next.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach the pool.
func (a attempts) CloseIdleConnections() {
	if c, ok := a.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
