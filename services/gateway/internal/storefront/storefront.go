package storefront

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/breaker"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/internal/auth"
)

//go:embed templates static
var files embed.FS

// Policy is the Content-Security-Policy of every page: everything from this
// origin only, no inline script or style, no framing, forms post here only.
const Policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Cookie names.
const (
	sessionCookie = "session" // the access token
	cartCookie    = "cart"    // the cart's lines, "SKU:qty|SKU:qty"
)

// Verifier checks an access token and tells whose it is (*auth.Tokens).
type Verifier interface {
	Verify(token string) (auth.User, error)
}

// Breakers tells the live state of the gateway's circuit breakers
// (*breaker.Set).
type Breakers interface {
	Rules() map[string]breaker.Rules
	State(upstream string) breaker.State
}

// Options are the storefront's dependencies.
type Options struct {
	// API serves the gateway's public API under /api/v1; every page's data
	// comes from it. Required.
	API http.Handler
	// Tokens verifies the session cookie's access token. Required.
	Tokens Verifier
	// Breakers, if not nil, are shown on the admin page.
	Breakers Breakers
	// Metrics, if not nil, is the gateway's registry: its limiter_ families
	// are shown on the admin page.
	Metrics prometheus.Gatherer
	// Traces, if not nil, is the tracing backend (Jaeger's query service):
	// an order's page shows the trace of its checkout as a waterfall.
	Traces TraceFinder
	// Log receives the storefront's errors; nil discards them.
	Log *slog.Logger
}

// Storefront serves the pages. Build it with New; it is safe for
// concurrent use.
type Storefront struct {
	opts   Options
	log    *slog.Logger
	pages  map[string]*template.Template
	static fs.FS
	origin *http.CrossOriginProtection
}

// New parses the embedded templates.
func New(opts Options) (*Storefront, error) {
	if opts.API == nil || opts.Tokens == nil {
		return nil, errors.New("storefront: API and Tokens are required")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pages := map[string]*template.Template{}
	names, err := fs.Glob(files, "templates/page_*.html")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		t, err := template.New("").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/part_*.html", name)
		if err != nil {
			return nil, fmt.Errorf("storefront: parse %s: %w", name, err)
		}
		pages[strings.TrimSuffix(strings.TrimPrefix(name, "templates/page_"), ".html")] = t
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	return &Storefront{opts: opts, log: log, pages: pages, static: static, origin: http.NewCrossOriginProtection()}, nil
}

// Register adds the pages to r, at / and beside /api/v1.
func (s *Storefront) Register(r gin.IRouter) {
	r.GET("/static/*file", s.asset)
	g := r.Group("", secureHeaders, s.session)
	g.GET("/", s.catalog)
	g.GET("/products/:sku", s.product)
	g.GET("/cart", s.cart)
	g.GET("/login", s.loginForm)
	g.GET("/orders", s.orders)
	g.GET("/orders/:id", s.order)
	g.GET("/orders/:id/live", s.orderLive)
	g.GET("/admin", s.admin)
	g.GET("/admin/live", s.adminLive)

	post := g.Group("", s.sameOrigin)
	post.POST("/cart", s.addToCart)
	post.POST("/cart/remove", s.removeFromCart)
	post.POST("/login", s.login)
	post.POST("/logout", s.logout)
	post.POST("/checkout", s.checkout)
	post.POST("/admin/faults", s.setFaults)
	post.POST("/admin/stock", s.adjustStock)
}

// secureHeaders sets the page's security headers. Pages are personal (the
// header names the user, the cart its lines): no cache keeps them.
func secureHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", Policy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// sameOrigin refuses a cross-origin POST (CSRF): a form another site
// submits to this one, with the visitor's cookies.
func (s *Storefront) sameOrigin(c *gin.Context) {
	if err := s.origin.Check(c.Request); err != nil {
		s.render(c, http.StatusForbidden, "error", view{Problem: &problem.Details{
			Status: http.StatusForbidden, Title: "Cross-origin request refused",
			Detail: "this form can only be sent from the shop's own pages"}})
		c.Abort()
	}
}

type userKey struct{}

// session puts the user of a valid session cookie in the context; an
// invalid or expired one is removed.
func (s *Storefront) session(c *gin.Context) {
	ck, err := c.Request.Cookie(sessionCookie)
	if err != nil {
		return
	}
	u, err := s.opts.Tokens.Verify(ck.Value)
	if err != nil {
		s.setCookie(c, sessionCookie, "", -1)
		return
	}
	c.Set(userKey{}, session{User: u, token: ck.Value})
}

// session is a logged-in browser.
type session struct {
	auth.User
	token string
}

func currentSession(c *gin.Context) (session, bool) {
	v, ok := c.Get(userKey{})
	if !ok {
		return session{}, false
	}
	u, ok := v.(session)
	return u, ok
}

// setCookie sets an HttpOnly, SameSite=Lax cookie for the whole site,
// Secure when the browser reached the gateway over TLS (directly or
// through a proxy that says so). maxAge < 0 deletes it.
func (s *Storefront) setCookie(c *gin.Context, name, value string, maxAge int) {
	secure := c.Request.TLS != nil || c.GetHeader("X-Forwarded-Proto") == "https"
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode,
	})
}

// asset serves an embedded script, stylesheet or icon.
func (s *Storefront) asset(c *gin.Context) {
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Cache-Control", "public, max-age=300")
	c.FileFromFS(strings.TrimPrefix(c.Param("file"), "/"), http.FS(s.static))
}

// view is what every page template gets.
type view struct {
	// User is the logged-in user, nil for a visitor.
	User *auth.User
	// CartCount is how many items the cart holds.
	CartCount int64
	// Problem, if not nil, is shown at the top of the page.
	Problem *problem.Details
	// Data is the page's own.
	Data any
}

// render writes page with status; the view's user and cart come from the
// request.
func (s *Storefront) render(c *gin.Context, status int, page string, v view) {
	if sess, ok := currentSession(c); ok {
		v.User = &sess.User
	}
	for _, l := range readCart(c) {
		v.CartCount += l.Quantity
	}
	s.renderTemplate(c, status, page, "layout", v)
}

// renderTemplate executes template name of page's set into a buffer first,
// so that a template error is a clean 500, not half a page.
func (s *Storefront) renderTemplate(c *gin.Context, status int, page, name string, data any) {
	t, ok := s.pages[page]
	if !ok {
		s.log.ErrorContext(c, "no such page template", slog.String("page", page))
		c.Status(http.StatusInternalServerError)
		return
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, name, data); err != nil {
		s.log.ErrorContext(c, "render page", slog.String("page", page), slog.Any("error", err))
		c.Status(http.StatusInternalServerError)
		return
	}
	c.Data(status, "text/html; charset=utf-8", b.Bytes())
}

// fail shows err: an API problem with its status, anything else as a 500
// (logged here).
func (s *Storefront) fail(c *gin.Context, err error) {
	var p *apiProblem
	if !errors.As(err, &p) {
		s.log.ErrorContext(c, "storefront", slog.Any("error", err))
		p = &apiProblem{Details: problem.New(http.StatusInternalServerError, "")}
	}
	if p.Status == http.StatusUnauthorized {
		// The token expired between the cookie's check and the call.
		s.setCookie(c, sessionCookie, "", -1)
		c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request.URL.Path))
		return
	}
	if ra := p.retryAfter; ra != "" {
		c.Header("Retry-After", ra)
	}
	s.render(c, p.Status, "error", view{Problem: &p.Details})
}

// apiProblem is an answer of the API that is not a success: its problem.
type apiProblem struct {
	problem.Details
	retryAfter string
}

func (p *apiProblem) Error() string {
	return fmt.Sprintf("api: %d %s: %s", p.Status, p.Title, p.Detail)
}

// call sends a request to the gateway's API in process, as the session's
// user (if any), and decodes a 2xx answer's JSON into out (if not nil).
// Any other answer is an *apiProblem.
func (s *Storefront) call(c *gin.Context, method, path string, header http.Header, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(c.Request.Context(), method, path, body)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if sess, ok := currentSession(c); ok {
		req.Header.Set("Authorization", "Bearer "+sess.token)
	}
	if id := httpserver.RequestID(c); id != "" {
		req.Header.Set("X-Request-Id", id)
	}
	req.RemoteAddr = c.Request.RemoteAddr
	req.Host = c.Request.Host

	rec := &recorder{header: http.Header{}}
	s.opts.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status < 200 || rec.status > 299 {
		p := &apiProblem{retryAfter: rec.header.Get("Retry-After")}
		mediaType, _, _ := mime.ParseMediaType(rec.header.Get("Content-Type"))
		if mediaType != problem.ContentType || json.Unmarshal(rec.body.Bytes(), &p.Details) != nil || p.Status != rec.status {
			p.Details = problem.New(rec.status, "")
		}
		return p
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// recorder is the http.ResponseWriter of an in-process API call.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
