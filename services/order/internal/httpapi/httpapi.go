// Package httpapi serves the order use cases over HTTP under /v1: JSON in
// and out (snake_case, times RFC 3339 in UTC), errors as problem+json.
//
// The API is internal: the gateway authenticates customers and calls it
// with their customer_id. Every bad input is answered with a 4xx problem;
// a 5xx means a fault of the service or its database.
package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/problem"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/order"
)

// Register adds the order endpoints to r, the router of
// httpserver.NewRouter, serving them with orders and logging internal
// errors to log.
func Register(r gin.IRouter, orders *order.Service, log *slog.Logger) {
	h := &handler{orders: orders, log: log}
	r.POST("/v1/orders", h.create)
	r.GET("/v1/orders", h.list)
	r.GET("/v1/orders/:id", h.get)
}

// handler serves the order endpoints.
type handler struct {
	orders *order.Service
	log    *slog.Logger
}

// IdempotencyKeyHeader carries the client's key for a create request.
const IdempotencyKeyHeader = "Idempotency-Key"

type (
	createRequest struct {
		CustomerID string     `json:"customer_id"`
		Lines      []lineJSON `json:"lines"`
		// CardNumber pays for the order. It is never echoed nor logged.
		CardNumber string `json:"card_number"`
	}
	lineJSON struct {
		SKU       string       `json:"sku"`
		Quantity  int64        `json:"quantity"`
		UnitPrice money.Amount `json:"unit_price"`
	}
	orderJSON struct {
		ID           string       `json:"id"`
		CustomerID   string       `json:"customer_id"`
		Status       order.Status `json:"status"`
		Lines        []lineJSON   `json:"lines"`
		Total        money.Amount `json:"total"`
		CancelReason string       `json:"cancel_reason,omitempty"`
		CreatedAt    time.Time    `json:"created_at"`
		UpdatedAt    time.Time    `json:"updated_at"`
		// History is left out of lists.
		History []statusChangeJSON `json:"history,omitempty"`
	}
	statusChangeJSON struct {
		Status order.Status `json:"status"`
		Reason string       `json:"reason"`
		At     time.Time    `json:"at"`
	}
	listResponse struct {
		Items      []orderJSON `json:"items"`
		NextCursor string      `json:"next_cursor,omitempty"`
	}
)

// create serves POST /v1/orders: 202 with Location for a new order, whose
// checkout has started (it is PENDING until the saga confirms or cancels
// it), 200 with the order a replayed Idempotency-Key made.
func (h *handler) create(c *gin.Context) {
	keys := c.Request.Header.Values(IdempotencyKeyHeader)
	if len(keys) != 1 || !order.ValidIdempotencyKey(keys[0]) {
		h.writeError(c, badIdempotencyKey(keys))
		return
	}
	var body createRequest
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &body, 0); err != nil {
		h.writeError(c, err)
		return
	}
	req := order.CreateRequest{
		CustomerID: body.CustomerID, IdempotencyKey: keys[0], CardNumber: body.CardNumber,
		Lines: make([]order.Line, len(body.Lines)),
	}
	for i, l := range body.Lines {
		req.Lines[i] = order.Line{SKU: l.SKU, Quantity: l.Quantity, UnitPrice: l.UnitPrice}
	}
	o, created, err := h.orders.Create(c.Request.Context(), req)
	if err != nil {
		h.writeError(c, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusAccepted
		c.Header("Location", "/v1/orders/"+o.ID)
		// The span of the request that created the order names it, so that
		// the order's trace — its whole checkout — can be found by its id.
		trace.SpanFromContext(c.Request.Context()).SetAttributes(attribute.String(checkoutv1.SpanAttributeOrderID, o.ID))
	}
	c.JSON(status, toJSON(o))
}

func badIdempotencyKey(keys []string) *problem.Details {
	msg := fmt.Sprintf("must be 1 to %d printable ASCII characters", order.MaxKeyLength)
	switch {
	case len(keys) == 0:
		msg = "is required"
	case len(keys) > 1:
		msg = "must be given once"
	}
	return &problem.Details{
		Title:  http.StatusText(http.StatusBadRequest),
		Status: http.StatusBadRequest,
		Detail: IdempotencyKeyHeader + " header " + msg,
		Errors: []problem.FieldError{{Field: IdempotencyKeyHeader, Message: msg}},
	}
}

// get serves GET /v1/orders/{id}?customer_id=, the order with its history.
// Without customer_id any customer's order is served; an empty one is
// refused rather than taken for "any customer".
func (h *handler) get(c *gin.Context) {
	customerID, given := c.GetQuery("customer_id")
	if given && customerID == "" {
		h.writeError(c, httpserver.Invalid(problem.FieldError{
			Field: "customer_id", Message: "must not be empty: leave it out to read any customer's order",
		}))
		return
	}
	o, err := h.orders.Get(c.Request.Context(), c.Param("id"), customerID)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toJSON(o))
}

// list serves GET /v1/orders?customer_id=&limit=&cursor=, a page of the
// customer's orders, newest first.
func (h *handler) list(c *gin.Context) {
	limit := order.DefaultListLimit
	if raw, given := c.GetQuery("limit"); given {
		n, err := strconv.Atoi(raw)
		if err != nil {
			h.writeError(c, httpserver.Invalid(problem.FieldError{
				Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", order.MaxListLimit),
			}))
			return
		}
		limit = n
	}
	orders, next, err := h.orders.List(c.Request.Context(), c.Query("customer_id"), limit, c.Query("cursor"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	resp := listResponse{Items: make([]orderJSON, len(orders)), NextCursor: next}
	for i, o := range orders {
		resp.Items[i] = toJSON(o)
	}
	c.JSON(http.StatusOK, resp)
}

// writeError answers err as problem+json. It is the one place where errors
// become HTTP statuses; only the unexpected ones, the service's own faults,
// are logged.
func (h *handler) writeError(c *gin.Context, err error) {
	var (
		p       problem.Details
		details *problem.Details
		invalid *order.ValidationError
	)
	switch {
	case errors.As(err, &details):
		p = *details
	case errors.As(err, &invalid):
		fields := make([]problem.FieldError, len(invalid.Fields))
		for i, f := range invalid.Fields {
			fields[i] = problem.FieldError{Field: f.Field, Message: f.Message}
		}
		p = *httpserver.Invalid(fields...)
	case errors.Is(err, order.ErrOrderNotFound):
		p = problem.New(http.StatusNotFound, "no such order")
	case errors.Is(err, order.ErrIdempotencyConflict):
		p = problem.New(http.StatusConflict, IdempotencyKeyHeader+" was already used for a request with other lines or another card")
	case errors.Is(err, order.ErrInvalidCursor):
		p = problem.New(http.StatusBadRequest, "cursor is not one this API returned")
		p.Errors = []problem.FieldError{{Field: "cursor", Message: "is not a next_cursor this API returned"}}
	default:
		h.log.ErrorContext(c.Request.Context(), "request failed", slog.String("path", c.Request.URL.Path), slog.Any("error", err))
		p = problem.New(http.StatusInternalServerError, "")
	}
	p.Instance = c.Request.URL.Path
	problem.Write(c.Writer, p)
}

func toJSON(o order.Order) orderJSON {
	j := orderJSON{
		ID:           o.ID,
		CustomerID:   o.CustomerID,
		Status:       o.Status,
		Lines:        make([]lineJSON, len(o.Lines)),
		Total:        o.Total,
		CancelReason: o.CancelReason,
		CreatedAt:    o.CreatedAt.UTC(),
		UpdatedAt:    o.UpdatedAt.UTC(),
	}
	for i, l := range o.Lines {
		j.Lines[i] = lineJSON{SKU: l.SKU, Quantity: l.Quantity, UnitPrice: l.UnitPrice}
	}
	for _, h := range o.History {
		j.History = append(j.History, statusChangeJSON{Status: h.Status, Reason: h.Reason, At: h.At.UTC()})
	}
	return j
}
