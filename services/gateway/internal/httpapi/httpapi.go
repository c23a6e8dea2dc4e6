// Package httpapi is the gateway's public REST API under /api/v1: login,
// the catalog, the caller's orders and the admin routes. It authenticates
// and authorizes every request, validates input field by field, and calls
// the services behind it, whose answers it relays.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/api"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

// API serves /api/v1. Build it with New; it is safe for concurrent use.
type API struct {
	users     *auth.Directory
	tokens    *auth.Tokens
	inventory *upstream.Client
	orders    *upstream.Client
	psp       *upstream.Client
	log       *slog.Logger
	spec      []byte // the OpenAPI document as JSON
}

// Upstreams are the services the API calls.
type Upstreams struct {
	Inventory, Orders, PSP *upstream.Client
}

// New returns the API; it fails only if the embedded OpenAPI document is invalid.
func New(ctx context.Context, log *slog.Logger, users *auth.Directory, tokens *auth.Tokens, up Upstreams) (*API, error) {
	doc, err := api.Load(ctx)
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	return &API{
		users: users, tokens: tokens, log: log, spec: spec,
		inventory: up.Inventory, orders: up.Orders, psp: up.PSP,
	}, nil
}

// Register adds the routes to r.
func (a *API) Register(r gin.IRouter) {
	v1 := r.Group("/api/v1")
	v1.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", a.spec) })
	v1.POST("/login", a.login)
	v1.GET("/products", a.listProducts)
	v1.GET("/products/:sku", a.getProduct)

	customer := v1.Group("", a.authenticate, require(auth.RoleCustomer))
	customer.POST("/orders", a.createOrder)
	customer.GET("/orders", a.listOrders)

	anyone := v1.Group("", a.authenticate, require(auth.RoleCustomer, auth.RoleAdmin))
	anyone.GET("/orders/:id", a.getOrder)

	admin := v1.Group("/admin", a.authenticate, require(auth.RoleAdmin))
	admin.POST("/products/:sku/stock-adjustments", a.adjustStock)
	admin.GET("/psp/faults", a.getFaults)
	admin.PUT("/psp/faults", a.setFaults)
}

// fail answers err as a problem: problems pass through, domain errors map to
// their status, and anything else is an internal error, logged here only.
func (a *API) fail(c *gin.Context, err error) {
	var p *problem.Details
	var netErr net.Error
	switch {
	case errors.As(err, &p):
		problem.Write(c.Writer, *p)
	case errors.Is(err, auth.ErrBadCredentials):
		problem.Write(c.Writer, problem.New(http.StatusUnauthorized, "unknown user or wrong password"))
	case errors.Is(err, upstream.ErrUnavailable) && errors.As(err, &netErr) && netErr.Timeout():
		a.log.WarnContext(c, "upstream timed out", slog.Any("error", err))
		problem.Write(c.Writer, problem.New(http.StatusGatewayTimeout, "a service behind the gateway did not answer in time"))
	case errors.Is(err, upstream.ErrUnavailable):
		a.log.WarnContext(c, "upstream unavailable", slog.Any("error", err))
		problem.Write(c.Writer, problem.New(http.StatusBadGateway, "a service behind the gateway is unavailable"))
	default:
		a.log.ErrorContext(c, "internal error", slog.Any("error", err), slog.String("path", c.Request.URL.Path))
		problem.Write(c.Writer, problem.New(http.StatusInternalServerError, ""))
	}
	c.Abort()
}

// relay sends an upstream's answer on as the gateway's own, with an
// upstream Location rewritten from its internal /v1 to the public /api/v1.
func relay(c *gin.Context, resp upstream.Response) {
	if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/v1/") {
		c.Header("Location", "/api"+loc)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	c.Data(resp.Status, ct, resp.Body)
}

type userKey struct{}

// authenticate requires a valid bearer token and puts its user in the context.
func (a *API) authenticate(c *gin.Context) {
	token, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || token == "" {
		unauthorized(c, "send Authorization: Bearer <token> (POST /api/v1/login gives one)")
		return
	}
	u, err := a.tokens.Verify(token)
	if err != nil {
		unauthorized(c, "the access token is invalid or expired")
		return
	}
	c.Set(userKey{}, u)
}

func unauthorized(c *gin.Context, detail string) {
	c.Header("WWW-Authenticate", `Bearer realm="microshop"`)
	problem.Write(c.Writer, problem.New(http.StatusUnauthorized, detail))
	c.Abort()
}

func require(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		u := user(c)
		for _, r := range roles {
			if u.Role == r {
				return
			}
		}
		problem.Write(c.Writer, problem.New(http.StatusForbidden, "this route is not for the "+u.Role+" role"))
		c.Abort()
	}
}

// user returns the authenticated user; only call it behind authenticate.
func user(c *gin.Context) auth.User {
	v, _ := c.Get(userKey{})
	u, _ := v.(auth.User)
	return u
}
