package httpserver

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/problem"
)

// After answering 413, LimitBody reads and discards what the client is still
// sending, up to DrainLimit bytes or for DrainTimeout, before the connection
// closes. Closing a socket with unread data makes the kernel send a reset,
// and a client that is still uploading may then lose the 413 it was sent.
const (
	DrainLimit   = 16 << 20
	DrainTimeout = 10 * time.Second
)

// LimitBody bounds the request body to max bytes before anything reads it.
//
//   - A declared Content-Length above max is answered 413 problem+json at
//     once, without reading the body: a client that sent Expect:
//     100-continue gets the 413 instead of a 100 Continue.
//   - A body of undeclared length (chunked) that grows past max makes its
//     reader return an *http.MaxBytesError, which the handler answers 413
//     (DecodeJSON does).
//
// Either way the answer carries Connection: close, and once it is sent the
// rest of the upload is drained (see DrainLimit) so that the client reads
// the 413 rather than a connection reset. NewRouter installs LimitBody with
// DefaultMaxBody; a group or route may add its own, smaller limit, which
// replaces the router's (the router's still refuses larger declared bodies
// first).
func LimitBody(max int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		raw := c.Request.Body
		if outer, ok := raw.(*limitedBody); ok {
			raw = outer.raw
		}
		if raw == nil || raw == http.NoBody {
			c.Next()
			return
		}
		if c.Request.ContentLength > max {
			c.Header("Connection", "close")
			p := tooLarge(max)
			p.Instance = c.Request.URL.Path
			problem.Write(c.Writer, p)
			c.Abort()
			// A client waiting for 100 Continue has sent nothing: reading
			// would ask it for the body we refuse.
			if !strings.EqualFold(c.GetHeader("Expect"), "100-continue") {
				drain(c, raw)
			}
			return
		}
		body := &limitedBody{raw: raw, left: max, limit: max, header: c.Writer.Header()}
		c.Request.Body = body
		c.Next()
		if body.exceeded {
			drain(c, raw)
		}
	}
}

func tooLarge(max int64) problem.Details {
	return problem.New(http.StatusRequestEntityTooLarge, fmt.Sprintf("body is larger than %d bytes", max))
}

// drain sends the answer written so far, then discards what remains of the
// request body, within DrainLimit and DrainTimeout.
func drain(c *gin.Context, body io.Reader) {
	c.Writer.Flush()
	// Not every ResponseWriter has deadlines (httptest's has not); without
	// one, DrainLimit alone bounds the work.
	_ = http.NewResponseController(c.Writer).SetReadDeadline(time.Now().Add(DrainTimeout))
	_, _ = io.CopyN(io.Discard, body, DrainLimit)
}

// limitedBody is the request body behind LimitBody. Unlike
// http.MaxBytesReader it keeps the raw body for drain, and it marks the
// answer Connection: close the moment the limit is crossed, before the
// handler writes its 413.
type limitedBody struct {
	raw      io.ReadCloser
	left     int64 // bytes that may still be read
	limit    int64
	exceeded bool
	header   http.Header // of the response
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.exceeded {
		return 0, &http.MaxBytesError{Limit: b.limit}
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more than allowed tells a full body from a long one
	}
	n, err := b.raw.Read(p)
	if int64(n) <= b.left {
		b.left -= int64(n)
		return n, err
	}
	b.exceeded = true
	b.header.Set("Connection", "close")
	n, b.left = int(b.left), 0
	return n, &http.MaxBytesError{Limit: b.limit}
}

// Close leaves the raw body open for drain; the server closes it once the
// handler returns. (kin-openapi, for one, closes a body it has read.)
func (b *limitedBody) Close() error { return nil }

// tighten lowers the limit to max if that is smaller.
func (b *limitedBody) tighten(max int64) {
	if read := b.limit - b.left; max < b.limit {
		b.limit, b.left = max, max-read
		if b.left < 0 {
			b.left = 0
		}
	}
}
