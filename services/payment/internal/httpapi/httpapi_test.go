package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/httpserver"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/httpapi"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
)

var created = time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.UTC)

// newAPI serves the API over a payment store on a fresh SQLite database.
// Reading needs no PSP.
func newAPI(t testing.TB) (http.Handler, *db.Store) {
	t.Helper()
	store := db.NewStore(paymenttest.Open(t, "sqlite:"+filepath.Join(t.TempDir(), "payment.db")))
	log := slog.New(slog.DiscardHandler)
	r := httpserver.NewRouter(log, health.New(0))
	httpapi.Register(r, payment.NewService(store, nil, time.Now), log)
	return r, store
}

func get(h http.Handler, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
	return rec
}

// addPayment stores a CAPTURED payment of 1999 EUR for an order, keyed by its id.
func addPayment(t testing.TB, store *db.Store, id, orderID string) {
	t.Helper()
	_, err := store.CreatePayment(t.Context(), payment.Payment{
		ID: id, OrderID: orderID, Amount: money.Amount{Minor: 1999, Currency: "EUR"},
		IdempotencyKey: id, CreatedAt: created, UpdatedAt: created,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.SettlePayment(t.Context(), id, payment.Outcome{Succeeded: true, PSPReference: "ch_1", At: created.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
}

func TestGetPayment(t *testing.T) {
	h, store := newAPI(t)
	addPayment(t, store, "0190a0a0-0000-7000-8000-000000000001", "order-1")
	_, err := store.CreateRefund(t.Context(), payment.Refund{
		ID: "0190a0a0-0000-7000-8000-0000000000ff", PaymentID: "0190a0a0-0000-7000-8000-000000000001",
		Amount: money.Amount{Minor: 250, Currency: "EUR"}, IdempotencyKey: "refund-1",
		CreatedAt: created.Add(time.Minute), UpdatedAt: created.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}

	rec := get(h, "/v1/payments/0190a0a0-0000-7000-8000-000000000001")
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
	}
	want := `{
		"id": "0190a0a0-0000-7000-8000-000000000001",
		"order_id": "order-1",
		"amount": {"amount": 1999, "currency": "EUR"},
		"status": "CAPTURED",
		"psp_reference": "ch_1",
		"created_at": "2026-03-04T05:06:07.123456Z",
		"updated_at": "2026-03-04T05:06:08.123456Z",
		"refunds": [{
			"id": "0190a0a0-0000-7000-8000-0000000000ff",
			"payment_id": "0190a0a0-0000-7000-8000-000000000001",
			"amount": {"amount": 250, "currency": "EUR"},
			"status": "PENDING",
			"psp_reference": "",
			"created_at": "2026-03-04T05:07:07.123456Z",
			"updated_at": "2026-03-04T05:07:07.123456Z"
		}]
	}`
	if diff := cmp.Diff(jsonValue(t, want), jsonValue(t, rec.Body.String())); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}

	for _, target := range []string{"/v1/payments/0190a0a0-0000-7000-8000-000000000009", "/v1/payments/not-an-id"} {
		rec := get(h, target)
		if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != problem.ContentType {
			t.Errorf("GET %s = %d %s, want a 404 problem", target, rec.Code, rec.Header().Get("Content-Type"))
		}
	}
}

func jsonValue(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("unmarshal %s: %v", s, err)
	}
	return v
}

type page struct {
	Items []struct {
		ID string `json:"id"`
	} `json:"items"`
	NextCursor string `json:"next_cursor"`
}

func (p page) ids() []string {
	ids := []string{}
	for _, it := range p.Items {
		ids = append(ids, it.ID)
	}
	return ids
}

func TestListPayments(t *testing.T) {
	h, store := newAPI(t)
	ids := []string{
		"0190a0a0-0000-7000-8000-000000000001",
		"0190a0a0-0000-7000-8000-000000000002",
		"0190a0a0-0000-7000-8000-000000000003",
	}
	for _, id := range ids {
		addPayment(t, store, id, "order-1")
	}
	addPayment(t, store, "0190a0a0-0000-7000-8000-000000000004", "order-2")

	t.Run("pages", func(t *testing.T) {
		var got []string
		target := "/v1/payments?order_id=order-1&limit=2"
		pages := 0
		for target != "" {
			rec := get(h, target)
			if rec.Code != http.StatusOK {
				t.Fatalf("GET %s = %d; body %s", target, rec.Code, rec.Body)
			}
			var p page
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			got = append(got, p.ids()...)
			pages++
			target = ""
			if p.NextCursor != "" {
				target = "/v1/payments?order_id=order-1&limit=2&cursor=" + url.QueryEscape(p.NextCursor)
			}
		}
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("ids over all pages (-want +got):\n%s", diff)
		}
		if pages != 2 {
			t.Errorf("pages = %d, want 2", pages)
		}
	})

	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantIDs    []string
		wantFields []string
	}{
		{"default limit", "order_id=order-1", 200, ids, nil},
		{"exact fit has no next page", "order_id=order-1&limit=3", 200, ids, nil},
		{"unknown order", "order_id=nope", 200, []string{}, nil},
		{"no order", "", 400, nil, []string{"order_id"}},
		{"limit 0", "order_id=order-1&limit=0", 400, nil, []string{"limit"}},
		{"limit 101", "order_id=order-1&limit=101", 400, nil, []string{"limit"}},
		{"limit not a number", "order_id=order-1&limit=ten", 400, nil, []string{"limit"}},
		{"empty limit", "order_id=order-1&limit=", 400, nil, []string{"limit"}},
		{"cursor not base64url", "order_id=order-1&cursor=***", 400, nil, []string{"cursor"}},
		{"cursor of something else", "order_id=order-1&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("'; DROP TABLE payments")), 400, nil, []string{"cursor"}},
		{"empty cursor", "order_id=order-1&cursor=", 400, nil, []string{"cursor"}},
		{"everything wrong", "limit=-1&cursor=x", 400, nil, []string{"order_id", "limit", "cursor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(h, "/v1/payments?"+tt.query)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus != http.StatusOK {
				var p problem.Details
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != problem.ContentType {
					t.Fatalf("body %s is not a problem (%v)", rec.Body, err)
				}
				var fields []string
				for _, e := range p.Errors {
					fields = append(fields, e.Field)
				}
				if diff := cmp.Diff(tt.wantFields, fields); diff != "" {
					t.Errorf("problem fields (-want +got):\n%s", diff)
				}
				return
			}
			var p page
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantIDs, p.ids()); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if p.NextCursor != "" {
				t.Errorf("next_cursor = %q on the last page, want it omitted", p.NextCursor)
			}
		})
	}
}

func FuzzListQuery(f *testing.F) {
	f.Add("order-1", "2", base64.RawURLEncoding.EncodeToString([]byte("0190a0a0-0000-7000-8000-000000000001")))
	f.Add("", "-1", "")
	f.Add("o\x00", "99999999999999999999", "%%%")
	h, store := newAPI(f)
	addPayment(f, store, "0190a0a0-0000-7000-8000-000000000001", "order-1")
	f.Fuzz(func(t *testing.T, orderID, limit, cursor string) {
		q := url.Values{"order_id": {orderID}, "limit": {limit}, "cursor": {cursor}}
		servicetest.CheckNoServerError(t, get(h, "/v1/payments?"+q.Encode()))
	})
}

func FuzzGetPayment(f *testing.F) {
	f.Add("0190a0a0-0000-7000-8000-000000000001")
	f.Add("")
	f.Add("../../healthz")
	f.Add("%00\xff")
	h, store := newAPI(f)
	addPayment(f, store, "0190a0a0-0000-7000-8000-000000000001", "order-1")
	f.Fuzz(func(t *testing.T, id string) {
		servicetest.CheckNoServerError(t, get(h, "/v1/payments/"+url.PathEscape(id)))
	})
}
