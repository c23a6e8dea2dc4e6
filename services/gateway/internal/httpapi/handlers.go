package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"golang.org/x/sync/errgroup"

	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/paycard"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/gateway/internal/auth"
	"github.com/microshop/microshop/services/gateway/internal/upstream"
)

// Input limits; the OpenAPI document states the same.
const (
	maxBody       = 16 << 10
	maxLines      = 50
	maxQuantity   = 1000
	maxDelta      = 1_000_000
	maxQuery      = 100
	maxCursor     = 512
	maxCreds      = 100
	maxFaultWait  = 30 * time.Second
	lookupsAtOnce = 8
)

var (
	skuPattern     = regexp.MustCompile(`^[A-Z0-9-]{1,64}$`)
	orderIDPattern = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)
	cursorPattern  = regexp.MustCompile(`^[A-Za-z0-9_=-]*$`)
)

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

type tokenResponse struct {
	AccessToken string    `json:"access_token"`
	TokenType   string    `json:"token_type"`
	ExpiresIn   int64     `json:"expires_in"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func (a *API) login(c *gin.Context) {
	var req loginRequest
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &req, maxBody); err != nil {
		a.fail(c, err)
		return
	}
	var errs []problem.FieldError
	errs = checkLen(errs, "username", req.Username, maxCreds)
	errs = checkLen(errs, "password", req.Password, maxCreds)
	if len(errs) > 0 {
		a.fail(c, httpserver.Invalid(errs...))
		return
	}
	u, err := a.users.Login(c, req.Username, req.Password)
	if err != nil {
		a.fail(c, err)
		return
	}
	token, exp, err := a.tokens.Issue(u)
	if err != nil {
		a.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, tokenResponse{
		AccessToken: token, TokenType: "Bearer",
		ExpiresIn: int64(time.Until(exp).Round(time.Second) / time.Second), ExpiresAt: exp,
	})
}

func checkLen(errs []problem.FieldError, field, v string, max int) []problem.FieldError {
	switch {
	case v == "":
		return append(errs, problem.FieldError{Field: field, Message: "is required"})
	case len(v) > max:
		return append(errs, problem.FieldError{Field: field, Message: fmt.Sprintf("must be at most %d bytes", max)})
	}
	return errs
}

// page validates limit and cursor and returns them as upstream query values.
func page(c *gin.Context) (url.Values, []problem.FieldError) {
	q := url.Values{}
	var errs []problem.FieldError
	if s, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			errs = append(errs, problem.FieldError{Field: "limit", Message: "must be an integer from 1 to 100"})
		} else {
			q.Set("limit", s)
		}
	}
	if s, ok := c.GetQuery("cursor"); ok {
		if len(s) > maxCursor || !cursorPattern.MatchString(s) {
			errs = append(errs, problem.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
		} else if s != "" {
			q.Set("cursor", s)
		}
	}
	return q, errs
}

func (a *API) listProducts(c *gin.Context) {
	q, errs := page(c)
	if s, ok := c.GetQuery("q"); ok {
		if len(s) > maxQuery || !utf8.ValidString(s) {
			errs = append(errs, problem.FieldError{Field: "q", Message: fmt.Sprintf("must be valid UTF-8 of at most %d bytes", maxQuery)})
		} else if s != "" {
			q.Set("q", s)
		}
	}
	if s, ok := c.GetQuery("in_stock"); ok {
		if b, err := strconv.ParseBool(s); err != nil {
			errs = append(errs, problem.FieldError{Field: "in_stock", Message: "must be true or false"})
		} else {
			q.Set("in_stock", strconv.FormatBool(b))
		}
	}
	if len(errs) > 0 {
		a.fail(c, badQuery(errs))
		return
	}
	a.forward(c, a.inventory, http.MethodGet, "/v1/products", q, nil, nil)
}

// badQuery is a 400 for invalid query parameters (the body, if any, is not
// what is wrong, so not a 422).
func badQuery(errs []problem.FieldError) *problem.Details {
	return &problem.Details{Title: "Invalid query parameters", Status: http.StatusBadRequest, Errors: errs}
}

func notFound(what string) *problem.Details {
	p := problem.New(http.StatusNotFound, what)
	return &p
}

func (a *API) getProduct(c *gin.Context) {
	sku := c.Param("sku")
	if !skuPattern.MatchString(sku) {
		a.fail(c, notFound("no product "+strconv.Quote(sku)))
		return
	}
	a.forward(c, a.inventory, http.MethodGet, "/v1/products/"+sku, nil, nil, nil)
}

// forward calls the upstream and relays its answer.
func (a *API) forward(c *gin.Context, to *upstream.Client, method, path string, q url.Values, h http.Header, body any) {
	resp, err := to.Do(c, method, path, q, h, body)
	if err != nil {
		a.fail(c, err)
		return
	}
	relay(c, resp, path)
}

type orderRequest struct {
	Lines []struct {
		SKU      string `json:"sku"`
		Quantity int64  `json:"quantity"`
	} `json:"lines"`
	// CardNumber is one of the payment provider simulator's test cards; a
	// real shop would receive a token from its provider's form instead.
	CardNumber string `json:"card_number"`
}

// upstreamOrderLine is a line as the order service takes it: with the unit
// price the gateway looked up in the catalog.
type upstreamOrderLine struct {
	SKU       string       `json:"sku"`
	Quantity  int64        `json:"quantity"`
	UnitPrice money.Amount `json:"unit_price"`
}

type upstreamOrder struct {
	CustomerID string              `json:"customer_id"`
	Lines      []upstreamOrderLine `json:"lines"`
	CardNumber string              `json:"card_number"`
}

func (a *API) createOrder(c *gin.Context) {
	key := c.GetHeader("Idempotency-Key")
	if !validIdempotencyKey(key) {
		p := problem.Details{Title: "Missing or invalid Idempotency-Key", Status: http.StatusBadRequest,
			Detail: "send an Idempotency-Key header of 1 to 255 printable ASCII characters, the same on every retry of this order",
			Errors: []problem.FieldError{{Field: "Idempotency-Key", Message: "must be 1 to 255 printable ASCII characters"}}}
		a.fail(c, &p)
		return
	}
	var req orderRequest
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &req, maxBody); err != nil {
		a.fail(c, err)
		return
	}
	if errs := validateOrder(req); len(errs) > 0 {
		a.fail(c, httpserver.Invalid(errs...))
		return
	}
	lines, err := a.priceLines(c, req)
	if err != nil {
		a.fail(c, err)
		return
	}
	a.forward(c, a.orders, http.MethodPost, "/v1/orders", nil,
		http.Header{"Idempotency-Key": {key}},
		upstreamOrder{CustomerID: user(c).ID, Lines: lines, CardNumber: req.CardNumber})
}

func validIdempotencyKey(k string) bool {
	if len(k) < 1 || len(k) > 255 {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

func validateOrder(req orderRequest) []problem.FieldError {
	var errs []problem.FieldError
	if !paycard.Valid(req.CardNumber) {
		errs = append(errs, problem.FieldError{Field: "card_number", Message: "must be 12 to 19 digits with a valid check digit"})
	}
	if len(req.Lines) < 1 || len(req.Lines) > maxLines {
		return append(errs, problem.FieldError{Field: "lines", Message: fmt.Sprintf("must have 1 to %d lines", maxLines)})
	}
	seen := make(map[string]int, len(req.Lines))
	for i, l := range req.Lines {
		field := func(name string) string { return fmt.Sprintf("lines[%d].%s", i, name) }
		if !skuPattern.MatchString(l.SKU) {
			errs = append(errs, problem.FieldError{Field: field("sku"), Message: "must be 1 to 64 of A-Z, 0-9 and -"})
		} else if j, dup := seen[l.SKU]; dup {
			errs = append(errs, problem.FieldError{Field: field("sku"), Message: fmt.Sprintf("repeats lines[%d]; put the total quantity on one line", j)})
		} else {
			seen[l.SKU] = i
		}
		if l.Quantity < 1 || l.Quantity > maxQuantity {
			errs = append(errs, problem.FieldError{Field: field("quantity"), Message: fmt.Sprintf("must be from 1 to %d", maxQuantity)})
		}
	}
	return errs
}

// priceLines looks up every line's current unit price in the catalog, a few
// lookups at a time. An unknown SKU is a field error of that line.
func (a *API) priceLines(c *gin.Context, req orderRequest) ([]upstreamOrderLine, error) {
	lines := make([]upstreamOrderLine, len(req.Lines))
	unknown := make([]bool, len(req.Lines))
	g, ctx := errgroup.WithContext(c)
	g.SetLimit(lookupsAtOnce)
	for i, l := range req.Lines {
		g.Go(func() error {
			resp, err := a.inventory.Do(ctx, http.MethodGet, "/v1/products/"+l.SKU, nil, nil, nil)
			switch {
			case err != nil:
				return err
			case resp.Status == http.StatusNotFound:
				unknown[i] = true
				return nil
			case resp.Status != http.StatusOK:
				return fmt.Errorf("look up %s in inventory: status %d", l.SKU, resp.Status)
			}
			var p struct {
				Price money.Amount `json:"price"`
			}
			if err := json.Unmarshal(resp.Body, &p); err != nil {
				return fmt.Errorf("decode inventory product %s: %w", l.SKU, err)
			}
			lines[i] = upstreamOrderLine{SKU: l.SKU, Quantity: l.Quantity, UnitPrice: p.Price}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var errs []problem.FieldError
	for i, u := range unknown {
		if u {
			errs = append(errs, problem.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Message: "no such product"})
		}
	}
	if len(errs) > 0 {
		return nil, httpserver.Invalid(errs...)
	}
	return lines, nil
}

func (a *API) listOrders(c *gin.Context) {
	q, errs := page(c)
	if len(errs) > 0 {
		a.fail(c, badQuery(errs))
		return
	}
	q.Set("customer_id", user(c).ID)
	a.forward(c, a.orders, http.MethodGet, "/v1/orders", q, nil, nil)
}

func (a *API) getOrder(c *gin.Context) {
	id := c.Param("id")
	if !orderIDPattern.MatchString(id) {
		a.fail(c, notFound("no order "+strconv.Quote(id)))
		return
	}
	q := url.Values{}
	if u := user(c); u.Role != auth.RoleAdmin {
		q.Set("customer_id", u.ID) // the order service answers 404 for another customer's order
	}
	a.forward(c, a.orders, http.MethodGet, "/v1/orders/"+id, q, nil, nil)
}

type stockAdjustment struct {
	Delta int64 `json:"delta"`
}

func (a *API) adjustStock(c *gin.Context) {
	sku := c.Param("sku")
	if !skuPattern.MatchString(sku) {
		a.fail(c, notFound("no product "+strconv.Quote(sku)))
		return
	}
	var req stockAdjustment
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &req, maxBody); err != nil {
		a.fail(c, err)
		return
	}
	if req.Delta == 0 || req.Delta < -maxDelta || req.Delta > maxDelta {
		a.fail(c, httpserver.Invalid(problem.FieldError{Field: "delta", Message: fmt.Sprintf("must be non-zero, from %d to %d", -maxDelta, maxDelta)}))
		return
	}
	a.forward(c, a.inventory, http.MethodPost, "/v1/products/"+sku+"/stock-adjustments", nil, nil, req)
}

// faults are the PSP simulator's; both fields are required, as the
// OpenAPI document says: a missing one is not taken for zero.
type faults struct {
	Latency     *string  `json:"latency"`
	FailureRate *float64 `json:"failure_rate"`
}

func (a *API) getFaults(c *gin.Context) {
	a.forward(c, a.psp, http.MethodGet, "/v1/admin/faults", nil, nil, nil)
}

func (a *API) setFaults(c *gin.Context) {
	var req faults
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &req, maxBody); err != nil {
		a.fail(c, err)
		return
	}
	var errs []problem.FieldError
	switch d, err := time.ParseDuration(deref(req.Latency)); {
	case req.Latency == nil:
		errs = append(errs, problem.FieldError{Field: "latency", Message: "is required"})
	case err != nil || d < 0 || d > maxFaultWait:
		errs = append(errs, problem.FieldError{Field: "latency", Message: "must be a duration from 0s to 30s, e.g. 250ms"})
	}
	switch {
	case req.FailureRate == nil:
		errs = append(errs, problem.FieldError{Field: "failure_rate", Message: "is required"})
	case !(*req.FailureRate >= 0 && *req.FailureRate <= 1): // also true for NaN
		errs = append(errs, problem.FieldError{Field: "failure_rate", Message: "must be from 0 to 1"})
	}
	if len(errs) > 0 {
		a.fail(c, httpserver.Invalid(errs...))
		return
	}
	a.forward(c, a.psp, http.MethodPut, "/v1/admin/faults", nil, nil, req)
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
