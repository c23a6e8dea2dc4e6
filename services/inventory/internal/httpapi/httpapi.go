// Package httpapi serves the inventory's internal HTTP API under /v1: the
// catalog, and stock adjustments for administrators. Reservations are not
// here: the checkout saga drives them over Kafka.
//
// Bodies are JSON with snake_case names; every error is
// application/problem+json. A bad query parameter is a 400 naming it; a body
// whose values are invalid is a 422 naming the fields.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
)

// defaultPageSize is the page size when the client gives no limit.
const defaultPageSize = 20

// Catalog is what the API needs of the inventory; *inventory.Service is one.
type Catalog interface {
	ListProducts(ctx context.Context, f inventory.Filter, limit int, cursor string) ([]inventory.ProductWithStock, string, error)
	GetProduct(ctx context.Context, sku string) (inventory.ProductWithStock, error)
	AdjustStock(ctx context.Context, sku string, delta int64) (inventory.Stock, error)
}

// Register adds the API's routes to r, served by catalog. Failures that are
// the server's fault are logged to log.
func Register(r gin.IRouter, catalog Catalog, log *slog.Logger) {
	h := &handler{catalog: catalog, log: log}
	v1 := r.Group("/v1")
	v1.GET("/products", h.listProducts)
	v1.GET("/products/:sku", h.getProduct)
	v1.POST("/products/:sku/stock-adjustments", h.adjustStock)
}

type handler struct {
	catalog Catalog
	log     *slog.Logger
}

// product is a product as the API shows it.
type product struct {
	SKU         string       `json:"sku"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Price       money.Amount `json:"price"`
	ImageRef    string       `json:"image_ref"`
	Available   int64        `json:"available"`
}

func productOf(p inventory.ProductWithStock) product {
	return product{
		SKU:         p.Product.SKU,
		Name:        p.Product.Name,
		Description: p.Product.Description,
		Price:       p.Product.Price,
		ImageRef:    p.Product.ImageRef,
		Available:   p.Stock.Available,
	}
}

// productPage is the answer to GET /v1/products.
type productPage struct {
	Items []product `json:"items"`
	// NextCursor fetches the next page; absent on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}

// stockAdjustment is the body of POST /v1/products/{sku}/stock-adjustments.
type stockAdjustment struct {
	// Delta is added to the available units: positive to restock, negative to shrink.
	Delta int64 `json:"delta"`
}

// stock is the answer to a stock adjustment.
type stock struct {
	SKU       string `json:"sku"`
	Available int64  `json:"available"`
	Reserved  int64  `json:"reserved"`
}

// listProducts serves GET /v1/products?limit=&cursor=&q=&in_stock=.
func (h *handler) listProducts(c *gin.Context) {
	filter, limit, cursor, err := listParams(c.Request.URL.Query())
	if err != nil {
		h.writeError(c, err)
		return
	}
	items, next, err := h.catalog.ListProducts(c.Request.Context(), filter, limit, cursor)
	if err != nil {
		h.writeError(c, err)
		return
	}
	page := productPage{Items: make([]product, len(items)), NextCursor: next}
	for i, p := range items {
		page.Items[i] = productOf(p)
	}
	c.JSON(http.StatusOK, page)
}

// listParams reads the query of GET /v1/products. Every bad parameter is
// named in one 400 problem.
func listParams(q url.Values) (filter inventory.Filter, limit int, cursor string, err error) {
	var bad []problem.FieldError
	limit = defaultPageSize
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > inventory.MaxPageSize {
			bad = append(bad, problem.FieldError{Field: "limit", Message: fmt.Sprintf("must be an integer from 1 to %d", inventory.MaxPageSize)})
		}
		limit = n
	}
	switch v := q.Get("in_stock"); v {
	case "", "false":
	case "true":
		filter.InStockOnly = true
	default:
		bad = append(bad, problem.FieldError{Field: "in_stock", Message: "must be true or false"})
	}
	filter.Query = q.Get("q")
	if !searchable(filter.Query) {
		bad = append(bad, problem.FieldError{Field: "q", Message: fmt.Sprintf("must be text of at most %d characters", inventory.MaxQueryLength)})
	}
	if bad != nil {
		return inventory.Filter{}, 0, "", badQuery(bad...)
	}
	return filter, limit, q.Get("cursor"), nil
}

// searchable reports whether q is a search text inventory.Filter accepts:
// UTF-8 of at most MaxQueryLength characters without control characters.
func searchable(q string) bool {
	if !utf8.ValidString(q) || utf8.RuneCountInString(q) > inventory.MaxQueryLength {
		return false
	}
	for _, r := range q {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// getProduct serves GET /v1/products/{sku}.
func (h *handler) getProduct(c *gin.Context) {
	p, err := h.catalog.GetProduct(c.Request.Context(), c.Param("sku"))
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, productOf(p))
}

// adjustStock serves POST /v1/products/{sku}/stock-adjustments.
func (h *handler) adjustStock(c *gin.Context) {
	var body stockAdjustment
	if err := httpserver.DecodeJSON(c.Writer, c.Request, &body, 0); err != nil {
		h.writeError(c, err)
		return
	}
	st, err := h.catalog.AdjustStock(c.Request.Context(), c.Param("sku"), body.Delta)
	if err != nil {
		h.writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, stock{SKU: st.SKU, Available: st.Available, Reserved: st.Reserved})
}

// writeError answers err as a problem. It is the one place that maps errors to
// statuses; it logs only the server's own failures, the others being the
// client's to fix.
func (h *handler) writeError(c *gin.Context, err error) {
	var (
		p       *problem.Details
		invalid *inventory.ValidationError
		short   *inventory.InsufficientStockError
		answer  problem.Details
	)
	switch {
	case errors.As(err, &p): // already a problem, from decoding the request
		answer = *p
	case errors.As(err, &invalid):
		fields := make([]problem.FieldError, len(invalid.Errors))
		for i, f := range invalid.Errors {
			fields[i] = problem.FieldError{Field: f.Field, Message: f.Message}
		}
		answer = *httpserver.Invalid(fields...)
	case errors.Is(err, inventory.ErrInvalidCursor):
		answer = *badQuery(problem.FieldError{Field: "cursor", Message: "is not a cursor this API returned"})
	case errors.Is(err, inventory.ErrProductNotFound):
		answer = problem.New(http.StatusNotFound, "no product has this SKU")
	case errors.As(err, &short):
		answer = problem.New(http.StatusConflict,
			fmt.Sprintf("%s has %d units available, fewer than the %d asked for", short.SKU, short.Available, short.Requested))
	default:
		h.log.ErrorContext(c.Request.Context(), "request failed",
			slog.String("method", c.Request.Method), slog.String("path", c.Request.URL.Path), slog.Any("error", err))
		answer = problem.New(http.StatusInternalServerError, "")
	}
	problem.Write(c.Writer, answer)
}

// badQuery is a 400 problem naming the query parameters at fault.
func badQuery(errs ...problem.FieldError) *problem.Details {
	return &problem.Details{
		Title:  http.StatusText(http.StatusBadRequest),
		Status: http.StatusBadRequest,
		Detail: "one or more query parameters are invalid",
		Errors: errs,
	}
}
