package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/problem"
)

// Hand-written fakes of the internal APIs behind the gateway, with just
// enough behaviour to tell whether the gateway calls them correctly. The
// end-to-end test in deploy/local runs the same public API against the real
// services.

type fakeProduct struct {
	SKU         string       `json:"sku"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Price       money.Amount `json:"price"`
	ImageRef    string       `json:"image_ref"`
	Available   int64        `json:"available"`
}

func fakeInventory() http.Handler {
	var mu sync.Mutex
	products := map[string]*fakeProduct{
		"MUG-CLASSIC": {SKU: "MUG-CLASSIC", Name: "Classic mug", Price: money.Amount{Minor: 1200, Currency: "EUR"}, Available: 10, ImageRef: "/images/MUG-CLASSIC.svg"},
		"TEE-LOGO":    {SKU: "TEE-LOGO", Name: "Logo tee", Price: money.Amount{Minor: 2500, Currency: "EUR"}, Available: 3},
		// Not listed: the storefront's test reads it to see markup escaped.
		"MARKUP": {SKU: "MARKUP", Name: `<script>alert("name")</script>`, Description: `<img src=x onerror=alert(1)>`,
			Price: money.Amount{Minor: 100, Currency: "EUR"}, Available: 1},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/products", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") != "" {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid cursor"))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"items": []*fakeProduct{products["MUG-CLASSIC"], products["TEE-LOGO"]}})
	})
	mux.HandleFunc("GET /v1/products/{sku}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		p, ok := products[r.PathValue("sku")]
		if !ok {
			problem.Write(w, problem.New(http.StatusNotFound, "no such product"))
			return
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /v1/products/{sku}/stock-adjustments", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Delta int64 }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, err.Error()))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		p, ok := products[r.PathValue("sku")]
		switch {
		case !ok:
			problem.Write(w, problem.New(http.StatusNotFound, "no such product"))
		case p.Available+req.Delta < 0:
			problem.Write(w, problem.New(http.StatusConflict, "not enough stock"))
		default:
			p.Available += req.Delta
			writeJSON(w, http.StatusOK, map[string]any{"sku": p.SKU, "available": p.Available, "reserved": 0})
		}
	})
	return mux
}

type fakeLine struct {
	SKU       string       `json:"sku"`
	Quantity  int64        `json:"quantity"`
	UnitPrice money.Amount `json:"unit_price"`
}

type fakeOrder struct {
	ID         string       `json:"id"`
	CustomerID string       `json:"customer_id"`
	Status     string       `json:"status"`
	Lines      []fakeLine   `json:"lines"`
	Total      money.Amount `json:"total"`
	CardNumber string       `json:"card_number,omitempty"`
	CreatedAt  string       `json:"created_at"`
	UpdatedAt  string       `json:"updated_at"`
	key, body  string
}

func fakeOrders() http.Handler {
	var mu sync.Mutex
	var orders []*fakeOrder
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		var o fakeOrder
		if err := json.NewDecoder(r.Body).Decode(&o); err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, err.Error()))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		// The fingerprint of the real service: lines as a set, and the card.
		lines := slices.Clone(o.Lines)
		slices.SortFunc(lines, func(a, b fakeLine) int { return strings.Compare(a.SKU, b.SKU) })
		o.key, o.body = r.Header.Get("Idempotency-Key"), fmt.Sprint(o.CustomerID, lines, o.CardNumber)
		for _, prev := range orders {
			if prev.CustomerID == o.CustomerID && prev.key == o.key {
				if prev.body != o.body {
					problem.Write(w, problem.New(http.StatusConflict, "key used with another body"))
					return
				}
				writeJSON(w, http.StatusOK, prev)
				return
			}
		}
		o.ID = fmt.Sprintf("01890000-0000-7000-8000-%012d", len(orders)+1)
		o.Status, o.CreatedAt, o.UpdatedAt = "PENDING", "2026-11-21T12:00:00Z", "2026-11-21T12:00:00Z"
		for _, l := range o.Lines {
			line, _ := l.UnitPrice.Mul(l.Quantity)
			o.Total, _ = o.Total.Add(line)
		}
		if o.CardNumber == "" {
			problem.Write(w, problem.New(http.StatusUnprocessableEntity, "card_number is required"))
			return
		}
		o.CardNumber = "" // the real service never answers with it either
		orders = append(orders, &o)
		w.Header().Set("Location", "/v1/orders/"+o.ID)
		writeJSON(w, http.StatusAccepted, &o)
	})
	mux.HandleFunc("GET /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("cursor") != "" {
			problem.Write(w, problem.New(http.StatusBadRequest, "invalid cursor"))
			return
		}
		mu.Lock()
		defer mu.Unlock()
		items := []*fakeOrder{}
		for _, o := range orders {
			if o.CustomerID == r.URL.Query().Get("customer_id") {
				items = append(items, o)
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items})
	})
	mux.HandleFunc("GET /v1/orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		customer, filtered := r.URL.Query()["customer_id"]
		for _, o := range orders {
			if o.ID == r.PathValue("id") && (!filtered || o.CustomerID == strings.Join(customer, "")) {
				writeJSON(w, http.StatusOK, o)
				return
			}
		}
		p := problem.New(http.StatusNotFound, "no order at "+r.URL.Path)
		p.Instance = r.URL.Path // as the real service does: its own, internal path
		problem.Write(w, p)
	})
	return mux
}

func fakePSP() http.Handler {
	var mu sync.Mutex
	faults := map[string]any{"latency": "0s", "failure_rate": 0.0}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/admin/faults", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		writeJSON(w, http.StatusOK, faults)
	})
	mux.HandleFunc("PUT /v1/admin/faults", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if err := json.NewDecoder(r.Body).Decode(&faults); err != nil {
			problem.Write(w, problem.New(http.StatusBadRequest, err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, faults)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
