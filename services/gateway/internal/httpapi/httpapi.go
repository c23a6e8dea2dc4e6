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
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/discovery"
	"github.com/microshop/microshop/pkg/httpserver"
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
	contract  *api.Validator
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
	contract, err := api.NewValidator(doc)
	if err != nil {
		return nil, err
	}
	return &API{
		users: users, tokens: tokens, log: log, spec: spec, contract: contract,
		inventory: up.Inventory, orders: up.Orders, psp: up.PSP,
	}, nil
}

// Register adds the routes to r. Every route under /api/v1 bounds its body
// to maxBody before anything reads it, then authenticates (where the route
// needs it), then validates the request against the OpenAPI document
// before its handler runs; the handlers check what the document cannot say.
func (a *API) Register(r gin.IRouter) {
	a.register(r, a.validate)
}

// register adds the routes with validate as the contract's check; tests
// pass a no-op to see what the handlers check on their own.
func (a *API) register(r gin.IRouter, validate gin.HandlerFunc) {
	r.GET("/images/:file", a.productImage)

	v1 := r.Group("/api/v1", httpserver.LimitBody(maxBody))
	public := v1.Group("", validate)
	public.GET("/openapi.json", func(c *gin.Context) { c.Data(http.StatusOK, "application/json", a.spec) })
	public.POST("/login", a.login)
	public.GET("/products", a.listProducts)
	public.GET("/products/:sku", a.getProduct)

	customer := v1.Group("", a.authenticate, require(auth.RoleCustomer), validate)
	customer.POST("/orders", a.createOrder)
	customer.GET("/orders", a.listOrders)

	anyone := v1.Group("", a.authenticate, require(auth.RoleCustomer, auth.RoleAdmin), validate)
	anyone.GET("/orders/:id", a.getOrder)

	admin := v1.Group("/admin", a.authenticate, require(auth.RoleAdmin), validate)
	admin.POST("/products/:sku/stock-adjustments", a.adjustStock)
	admin.GET("/psp/faults", a.getFaults)
	admin.PUT("/psp/faults", a.setFaults)
}

// validate refuses a request that breaks the OpenAPI document.
func (a *API) validate(c *gin.Context) {
	if err := a.contract.CheckRequest(c, c.Request); err != nil {
		a.fail(c, err)
	}
}

// fail answers err as a problem: problems pass through, domain errors map to
// their status, and anything else is an internal error, logged here only.
func (a *API) fail(c *gin.Context, err error) {
	var (
		p       problem.Details
		details *problem.Details
		netErr  net.Error
		open    *breaker.OpenError
	)
	switch {
	case errors.As(err, &details):
		p = *details
	case errors.Is(err, auth.ErrBadCredentials):
		p = problem.New(http.StatusUnauthorized, "unknown user or wrong password")
	case errors.As(err, &open):
		// Failed fast: the service is given time to recover, and the
		// client is told when to come back.
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(open.RetryAfter.Seconds()))))
		p = problem.New(http.StatusServiceUnavailable, "a service behind the gateway is failing; try again later")
	case errors.Is(err, discovery.ErrNoInstance):
		a.log.WarnContext(c, "upstream has no healthy instance", slog.Any("error", err))
		c.Header("Retry-After", "1")
		p = problem.New(http.StatusServiceUnavailable, "a service behind the gateway has no instance available; try again later")
	case errors.Is(err, upstream.ErrUnavailable) && errors.As(err, &netErr) && netErr.Timeout():
		a.log.WarnContext(c, "upstream timed out", slog.Any("error", err))
		p = problem.New(http.StatusGatewayTimeout, "a service behind the gateway did not answer in time")
	case errors.Is(err, upstream.ErrUnavailable):
		a.log.WarnContext(c, "upstream unavailable", slog.Any("error", err))
		p = problem.New(http.StatusBadGateway, "a service behind the gateway is unavailable")
	default:
		a.log.ErrorContext(c, "internal error", slog.Any("error", err), slog.String("path", c.Request.URL.Path))
		p = problem.New(http.StatusInternalServerError, "")
	}
	writeProblem(c, p)
}

// writeProblem answers p, naming the public path as its instance, and ends
// the request's handler chain.
func writeProblem(c *gin.Context, p problem.Details) {
	p.Instance = c.Request.URL.Path
	problem.Write(c.Writer, p)
	c.Abort()
}

// relay sends an upstream's answer on as the gateway's own, in the public
// API's terms: an upstream Location is rewritten from the internal path to
// the public one, and a problem names the public route (see publicProblem).
// internalPath is the path the upstream was called with.
func relay(c *gin.Context, resp upstream.Response, internalPath string) {
	if loc := resp.Header.Get("Location"); strings.HasPrefix(loc, "/v1/") {
		c.Header("Location", "/api"+loc)
	}
	ct := resp.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	if mediaType, _, _ := mime.ParseMediaType(ct); mediaType == problem.ContentType {
		writeProblem(c, publicProblem(resp, internalPath, c.Request.URL.Path))
		return
	}
	c.Data(resp.Status, ct, resp.Body)
}

// publicProblem is an upstream's problem as the public API tells it: no
// text names the internal path (writeProblem sets the instance). A problem
// that cannot be read keeps only its status.
func publicProblem(resp upstream.Response, internalPath, publicPath string) problem.Details {
	var p problem.Details
	if err := json.Unmarshal(resp.Body, &p); err != nil || p.Status != resp.Status {
		p = problem.New(resp.Status, "")
	}
	p.Detail = strings.ReplaceAll(p.Detail, internalPath, publicPath)
	for i, e := range p.Errors {
		p.Errors[i].Message = strings.ReplaceAll(e.Message, internalPath, publicPath)
	}
	return p
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
	httpserver.AddLogAttrs(c, slog.String("role", u.Role))
	if u.Role == auth.RoleCustomer {
		httpserver.AddLogAttrs(c, slog.String("customer_id", u.ID))
	}
}

func unauthorized(c *gin.Context, detail string) {
	c.Header("WWW-Authenticate", `Bearer realm="microshop"`)
	writeProblem(c, problem.New(http.StatusUnauthorized, detail))
}

func require(roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		u := user(c)
		for _, r := range roles {
			if u.Role == r {
				return
			}
		}
		writeProblem(c, problem.New(http.StatusForbidden, "this route is not for the "+u.Role+" role"))
	}
}

// user returns the authenticated user; only call it behind authenticate.
func user(c *gin.Context) auth.User {
	v, _ := c.Get(userKey{})
	u, _ := v.(auth.User)
	return u
}
