package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/servicetest"
	"github.com/microshop/microshop/services/order/internal/checkout/checkouttest"
)

// TestRun wires the whole service in-process against real SQLite and
// PostgreSQL databases and a real Kafka-protocol broker.
func TestRun(t *testing.T) {
	broker := kafkatest.Start(t)
	cluster := pgtest.Start(t)
	databases := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "order.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
	for name, newDatabaseURL := range databases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{
				"ORDER_HTTP_ADDR":     servicetest.FreeAddr(t),
				"ORDER_DATABASE_URL":  newDatabaseURL(t),
				"ORDER_KAFKA_BROKERS": broker,
			}
			svc := servicetest.Start(t, run, env, "ORDER_HTTP_ADDR")

			resp, err := http.Get(svc.URL + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			var got health.Report
			err = json.NewDecoder(resp.Body).Decode(&got)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			want := health.Report{Status: health.StatusReady, Checks: map[string]health.Result{
				"database": {Status: health.StatusUp}, "kafka": {Status: health.StatusUp},
			}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("readiness mismatch (-want +got):\n%s", diff)
			}

			id := checkOrderRoundTrip(t, svc.URL)
			checkCheckout(t, svc.URL, broker, id)
			checkMetrics(t, svc.URL)

			if err := svc.Stop(); err != nil {
				t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
			}
			if logs := svc.Logs(); !strings.Contains(logs, `"msg":"http server stopped"`) {
				t.Errorf("logs do not show a graceful HTTP stop:\n%s", logs)
			}
		})
	}
}

// checkOrderRoundTrip places an order through the running service, reads it
// back at its Location, and replays the request: the API, the domain and the
// database are wired together. It returns the order's id.
func checkOrderRoundTrip(t *testing.T, baseURL string) string {
	t.Helper()
	const body = `{"customer_id": "alice", "card_number": "4242424242424242", "lines": [{"sku": "MUG", "quantity": 2, "unit_price": {"amount": 1250, "currency": "EUR"}}]}`
	place := func() (*http.Response, orderBody) {
		req, err := http.NewRequest(http.MethodPost, baseURL+"/v1/orders", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "wiring-1")
		return do(t, req)
	}

	resp, created := place()
	if resp.StatusCode != http.StatusAccepted || created.ID == "" {
		t.Fatalf("POST /v1/orders = %d with id %q, want 202 with an id", resp.StatusCode, created.ID)
	}
	want := orderBody{ID: created.ID, Status: "PENDING", Total: money.Amount{Minor: 2500, Currency: "EUR"}}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("created order (-want +got):\n%s", diff)
	}

	req, err := http.NewRequest(http.MethodGet, baseURL+resp.Header.Get("Location")+"?customer_id=alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, got := do(t, req); resp.StatusCode != http.StatusOK || got != created {
		t.Errorf("GET Location = %d %+v, want 200 %+v", resp.StatusCode, got, created)
	}
	if resp, got := place(); resp.StatusCode != http.StatusOK || got != created {
		t.Errorf("replayed POST = %d %+v, want 200 %+v", resp.StatusCode, got, created)
	}
	return created.ID
}

// checkCheckout lets fake participants answer the commands of order id over
// the broker: the running service consumes their replies and drives the saga
// through its three steps to a confirmed order.
func checkCheckout(t *testing.T, baseURL, broker, id string) {
	t.Helper()
	fakes := checkouttest.Start(t, broker, checkouttest.Behave(checkouttest.Options{}))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	want := []string{"ReserveStock", "ChargePayment", "CommitReservation"}
	poll.UntilNil(ctx, t, fmt.Sprintf("order %s CONFIRMED after %v", id, want), func() error {
		req, err := http.NewRequest(http.MethodGet, baseURL+"/v1/orders/"+id, nil)
		if err != nil {
			return err
		}
		resp, got := do(t, req)
		if resp.StatusCode != http.StatusOK || got.Status != "CONFIRMED" || !slices.Equal(fakes.Commands(id), want) {
			return fmt.Errorf("order is %d %s, commands received %v", resp.StatusCode, got.Status, fakes.Commands(id))
		}
		return nil
	})
}

// checkMetrics checks that the service's registry is served, with the saga's
// and the outbox's metrics among others.
func checkMetrics(t *testing.T, baseURL string) {
	t.Helper()
	resp, err := http.Get(baseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "saga_") || !strings.Contains(string(body), "outbox_") {
		t.Errorf("GET /metrics = %d without saga_ and outbox_ metrics:\n%.2000s", resp.StatusCode, body)
	}
}

// orderBody is the part of an order's JSON the wiring test checks.
type orderBody struct {
	ID     string       `json:"id"`
	Status string       `json:"status"`
	Total  money.Amount `json:"total"`
}

func do(t *testing.T, req *http.Request) (*http.Response, orderBody) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var o orderBody
	if err := json.NewDecoder(resp.Body).Decode(&o); err != nil {
		t.Fatalf("%s %s: decode body: %v", req.Method, req.URL, err)
	}
	return resp, o
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	servicetest.CheckConfigRejected(t, run, map[string]string{
		"ORDER_CHAOS_CRASH_AFTER_HANDLE": "1.5",
		"ORDER_HTTP_ADDR":                "nowhere",
		"ORDER_DATABASE_URL":             "mysql://db",
		"ORDER_KAFKA_BROKERS":            "a:1,",
		"ORDER_SHUTDOWN_TIMEOUT":         "soon",
		"ORDER_LOG_LEVEL":                "chatty",
		"ORDER_RESERVE_TIMEOUT":          "0s",
		"ORDER_CHARGE_TIMEOUT":           "-1s",
		"ORDER_COMMIT_TIMEOUT":           "0",
		"ORDER_SAGA_POLL_INTERVAL":       "often",
		"ORDER_SAGA_RETRY_MIN":           "1",
		"ORDER_SAGA_RETRY_MAX":           "never",
		"ORDER_SAGA_BATCH_SIZE":          "0",
	})
}

// TestStepDeadlines checks that each step of the checkout saga takes its
// deadline from its own variable, with the defaults the README documents.
func TestStepDeadlines(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want [3]time.Duration // reserve, charge, commit
	}{
		{"defaults", nil, [3]time.Duration{10 * time.Second, 15 * time.Second, 10 * time.Second}},
		{"set", map[string]string{"ORDER_RESERVE_TIMEOUT": "1s", "ORDER_CHARGE_TIMEOUT": "2s", "ORDER_COMMIT_TIMEOUT": "3s"},
			[3]time.Duration{time.Second, 2 * time.Second, 3 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if got := [3]time.Duration{cfg.ReserveTimeout, cfg.ChargeTimeout, cfg.CommitTimeout}; got != tt.want {
				t.Errorf("step deadlines = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "ORDER_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}
