package httpserver

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// RequestIDHeader carries a request's id: taken from the request when it is
// well-formed (see validRequestID), made up otherwise, returned in the
// response and sent on by the gateway to the services it calls, so that one
// id names a request in every access log it crossed.
const RequestIDHeader = "X-Request-Id"

type requestIDKey struct{}

// RequestID returns the id of the request ctx belongs to, or "" outside one.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// requestID puts the request's id in its context and response header.
func requestID(c *gin.Context) {
	id := c.GetHeader(RequestIDHeader)
	if !validRequestID(id) {
		id = rand.Text()
	}
	c.Request = c.Request.WithContext(context.WithValue(c.Request.Context(), requestIDKey{}, id))
	c.Header(RequestIDHeader, id)
	c.Next()
}

// validRequestID accepts 1 to 128 letters, digits, '-', '_' and '.': enough
// for UUIDs and trace ids, nothing that could forge a log line or a header.
func validRequestID(id string) bool {
	if len(id) < 1 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

const logAttrsKey = "httpserver.logAttrs"

// AddLogAttrs adds attributes to the access log line of the request c
// serves, e.g. the customer id once a handler knows it. Never pass secrets:
// tokens, passwords and card numbers stay out of logs.
func AddLogAttrs(c *gin.Context, attrs ...slog.Attr) {
	if p, ok := c.Get(logAttrsKey); ok {
		list := p.(*[]slog.Attr)
		*list = append(*list, attrs...)
	}
}

// accessLog writes one line per request once it is answered: method, route
// template (never the raw path or query, which may carry ids and secrets),
// status, duration, bytes of the answer's body, request id, and what
// handlers added with AddLogAttrs. Server errors are logged at Error, the
// rest at Info.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		var extra []slog.Attr
		c.Set(logAttrsKey, &extra)
		c.Next()
		level := slog.LevelInfo
		if c.Writer.Status() >= http.StatusInternalServerError {
			level = slog.LevelError
		}
		route := c.FullPath()
		if route == "" {
			route = "(no route)"
		}
		attrs := append([]slog.Attr{
			slog.String("method", c.Request.Method),
			slog.String("route", route),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)),
			slog.Int("bytes", max(c.Writer.Size(), 0)),
			slog.String("request_id", RequestID(c.Request.Context())),
		}, extra...)
		log.LogAttrs(c.Request.Context(), level, "http request", attrs...)
	}
}
