// Package httpapi serves the payment service's HTTP API: payments and their
// refunds, read by id or by order. Nothing here charges: the checkout saga
// drives charges and refunds through the Service directly.
package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/payment/internal/payment"
)

// Payments is what the API reads; *payment.Service implements it.
type Payments interface {
	Payment(ctx context.Context, id string) (payment.Payment, error)
	PaymentsOfOrder(ctx context.Context, q payment.ListQuery) (payment.Page, error)
}

// DefaultLimit is the page size when ?limit= is absent.
const DefaultLimit = 20

// Register adds the API to r:
//
//	GET /v1/payments?order_id=&limit=&cursor=   an order's payments, oldest first
//	GET /v1/payments/:id                        one payment
//
// Internal errors are logged to log.
func Register(r gin.IRouter, payments Payments, log *slog.Logger) {
	h := &handler{payments: payments, log: log}
	r.GET("/v1/payments", h.list)
	r.GET("/v1/payments/:id", h.get)
}

type handler struct {
	payments Payments
	log      *slog.Logger
}

func (h *handler) get(c *gin.Context) {
	p, err := h.payments.Payment(c.Request.Context(), c.Param("id"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toJSON(p))
}

// listJSON is a page of the listing.
type listJSON struct {
	Items      []paymentJSON `json:"items"`
	NextCursor string        `json:"next_cursor,omitempty"`
}

func (h *handler) list(c *gin.Context) {
	q, err := parseListQuery(c.Request.URL.Query())
	if err != nil {
		h.writeError(c, err)
		return
	}
	page, err := h.payments.PaymentsOfOrder(c.Request.Context(), q)
	if err != nil {
		h.writeError(c, err)
		return
	}
	out := listJSON{Items: make([]paymentJSON, len(page.Payments))}
	for i, p := range page.Payments {
		out.Items[i] = toJSON(p)
	}
	if page.Next != "" {
		out.NextCursor = encodeCursor(page.Next)
	}
	c.JSON(http.StatusOK, out)
}

// parseListQuery reads ?order_id= (required), ?limit= (1 to
// payment.MaxPageSize, default DefaultLimit) and ?cursor= (a next_cursor
// from a previous page). It answers a 400 problem naming every bad parameter.
func parseListQuery(v url.Values) (payment.ListQuery, error) {
	q := payment.ListQuery{OrderID: v.Get("order_id"), Limit: DefaultLimit}
	var errs []problem.FieldError
	if q.OrderID == "" {
		errs = append(errs, problem.FieldError{Field: "order_id", Message: "is required"})
	}
	if v.Has("limit") {
		n, err := strconv.Atoi(v.Get("limit"))
		if err != nil || n < 1 || n > payment.MaxPageSize {
			errs = append(errs, problem.FieldError{Field: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(payment.MaxPageSize)})
		}
		q.Limit = n
	}
	if v.Has("cursor") {
		after, ok := decodeCursor(v.Get("cursor"))
		if !ok {
			errs = append(errs, problem.FieldError{Field: "cursor", Message: "is not a next_cursor this API returned"})
		}
		q.After = after
	}
	if len(errs) > 0 {
		p := problem.New(http.StatusBadRequest, "invalid query parameters")
		p.Errors = errs
		return payment.ListQuery{}, &p
	}
	return q, nil
}

// A cursor is the last payment id of a page, base64url-encoded: opaque to
// clients, so its form can change.
func encodeCursor(lastID string) string { return base64.RawURLEncoding.EncodeToString([]byte(lastID)) }

func decodeCursor(s string) (lastID string, ok bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return "", false
	}
	id, err := uuid.Parse(string(b))
	if err != nil || id.String() != string(b) {
		return "", false
	}
	return id.String(), true
}

// paymentJSON is the API's form of a payment.
type paymentJSON struct {
	ID            string       `json:"id"`
	OrderID       string       `json:"order_id"`
	Amount        money.Amount `json:"amount"`
	Status        string       `json:"status"`
	PSPReference  string       `json:"psp_reference"`
	FailureReason string       `json:"failure_reason,omitempty"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
	Refunds       []refundJSON `json:"refunds"`
}

// refundJSON is the API's form of a refund.
type refundJSON struct {
	ID            string       `json:"id"`
	PaymentID     string       `json:"payment_id"`
	Amount        money.Amount `json:"amount"`
	Status        string       `json:"status"`
	PSPReference  string       `json:"psp_reference"`
	FailureReason string       `json:"failure_reason,omitempty"`
	CreatedAt     time.Time    `json:"created_at"`
	UpdatedAt     time.Time    `json:"updated_at"`
}

func toJSON(p payment.Payment) paymentJSON {
	out := paymentJSON{
		ID:            p.ID,
		OrderID:       p.OrderID,
		Amount:        p.Amount,
		Status:        string(p.Status),
		PSPReference:  p.PSPReference,
		FailureReason: p.FailureReason,
		CreatedAt:     p.CreatedAt.UTC(),
		UpdatedAt:     p.UpdatedAt.UTC(),
		Refunds:       make([]refundJSON, len(p.Refunds)),
	}
	for i, r := range p.Refunds {
		out.Refunds[i] = refundJSON{
			ID:            r.ID,
			PaymentID:     r.PaymentID,
			Amount:        r.Amount,
			Status:        string(r.Status),
			PSPReference:  r.PSPReference,
			FailureReason: r.FailureReason,
			CreatedAt:     r.CreatedAt.UTC(),
			UpdatedAt:     r.UpdatedAt.UTC(),
		}
	}
	return out
}

// writeError answers err as problem+json: the one place domain errors
// become HTTP statuses. Only internal errors are logged.
func (h *handler) writeError(c *gin.Context, err error) {
	var p *problem.Details
	switch {
	case errors.As(err, &p):
		problem.Write(c.Writer, *p)
	case errors.Is(err, payment.ErrNotFound):
		problem.Write(c.Writer, problem.New(http.StatusNotFound, "no such payment"))
	case errors.Is(err, payment.ErrInvalid):
		problem.Write(c.Writer, problem.New(http.StatusUnprocessableEntity, err.Error()))
	default:
		h.log.ErrorContext(c.Request.Context(), "internal error", slog.String("path", c.Request.URL.Path), slog.Any("error", err))
		problem.Write(c.Writer, problem.New(http.StatusInternalServerError, ""))
	}
}
