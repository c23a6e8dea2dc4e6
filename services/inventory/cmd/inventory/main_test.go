package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/microshop/microshop/pkg/health"
	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/servicetest"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/inventory/internal/db"
	"github.com/microshop/microshop/services/inventory/internal/db/dbtest"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
)

// TestRun wires the whole service in-process against real SQLite and
// PostgreSQL databases and a real Kafka-protocol broker.
func TestRun(t *testing.T) {
	broker := kafkatest.Start(t)
	cluster := pgtest.Start(t)
	databases := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "inventory.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
	for name, newDatabaseURL := range databases {
		t.Run(name, func(t *testing.T) {
			databaseURL := newDatabaseURL(t)
			abandonCheckout(t, databaseURL)
			env := map[string]string{
				"INVENTORY_HTTP_ADDR":       servicetest.FreeAddr(t),
				"INVENTORY_DATABASE_URL":    databaseURL,
				"INVENTORY_KAFKA_BROKERS":   broker,
				"INVENTORY_EXPIRY_INTERVAL": "20ms",
			}
			svc := servicetest.Start(t, run, env, "INVENTORY_HTTP_ADDR")

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

			var page struct {
				Items []json.RawMessage `json:"items"`
			}
			if status := getJSON(t, svc.URL+"/v1/products?limit=100", &page); status != http.StatusOK || len(page.Items) < 20 {
				t.Errorf("GET /v1/products = %d with %d products, want 200 with the demo catalog", status, len(page.Items))
			}

			// The expirer gives back the two mugs of the checkout abandoned
			// an hour ago: 50 available again.
			poll.UntilNil(within(t, 10*time.Second), t, "MUG-CLASSIC back to 50 available", func() error {
				var mug struct {
					Available int64 `json:"available"`
				}
				if status := getJSON(t, svc.URL+"/v1/products/MUG-CLASSIC", &mug); status != http.StatusOK || mug.Available != 50 {
					return fmt.Errorf("%d %+v\nlogs:\n%s", status, mug, svc.Logs())
				}
				return nil
			})

			// The checkout saga's ReserveStock, from Kafka, is answered with
			// StockReserved on the replies topic.
			orderID := "order-" + name
			sendCommand(t, broker, orderID)
			reply := awaitReply(t, broker, orderID, svc)
			reserved := reply.GetStockReserved()
			if reserved.GetOrderId() != orderID || reserved.GetReservationId() == "" || reply.GetStep() != checkoutv1.StepReserveStock {
				t.Errorf("reply to ReserveStock = %v, want StockReserved for %s on step reserve-stock", reply, orderID)
			}
			var keychain struct {
				Available int64 `json:"available"`
			}
			if getJSON(t, svc.URL+"/v1/products/KEYCHAIN-GOPHER", &keychain); keychain.Available != keychainsAvailable-1 {
				t.Errorf("KEYCHAIN-GOPHER available = %d after reserving one, want %d", keychain.Available, keychainsAvailable-1)
			}

			// The command is counted once the consumer committed it, just
			// after the reply was written.
			poll.UntilNil(within(t, 10*time.Second), t, "the command consumed and inventory_commit_after_expiry_total in /metrics", func() error {
				metrics := getText(t, svc.URL+"/metrics")
				if !strings.Contains(metrics, `messaging_consumed_total{outcome="ok",topic="checkout.inventory.commands"} 1`) ||
					!strings.Contains(metrics, "inventory_commit_after_expiry_total 0") {
					return fmt.Errorf("GET /metrics:\n%s", metrics)
				}
				return nil
			})

			resp, err = http.Post(svc.URL+"/v1/products/MUG-CLASSIC/stock-adjustments", "application/json", strings.NewReader(`{"delta": 5}`))
			if err != nil {
				t.Fatal(err)
			}
			var adjusted map[string]any
			err = json.NewDecoder(resp.Body).Decode(&adjusted)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			wantAdjusted := map[string]any{"sku": "MUG-CLASSIC", "available": 55.0, "reserved": 0.0}
			if diff := cmp.Diff(wantAdjusted, adjusted); resp.StatusCode != http.StatusOK || diff != "" {
				t.Errorf("stock adjustment = %d, want 200; body mismatch (-want +got):\n%s", resp.StatusCode, diff)
			}

			if status := getJSON(t, svc.URL+"/v1/products/NO-SUCH-THING", &problem.Details{}); status != http.StatusNotFound {
				t.Errorf("GET an unknown product = %d, want 404", status)
			}

			if err := svc.Stop(); err != nil {
				t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
			}
			logs := svc.Logs()
			for _, want := range []string{`"msg":"http server stopped"`, `"msg":"consumer stopped"`, `"msg":"outbox relay stopped"`, `"msg":"reservations expired","service":"inventory","expired":1`, `"msg":"reservation expirer stopped"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("logs lack %s:\n%s", want, logs)
				}
			}
		})
	}
}

// abandonCheckout prepares the database at url as a checkout abandoned an
// hour ago leaves it: 2 of the 50 MUG-CLASSIC reserved and overdue.
func abandonCheckout(t *testing.T, url string) {
	t.Helper()
	anHourAgo := func() time.Time { return time.Now().Add(-time.Hour) }
	svc := inventory.NewService(db.NewStore(dbtest.Open(t, url)), anHourAgo, 15*time.Minute)
	if _, err := svc.Reserve(t.Context(), "abandoned", []inventory.Line{{SKU: "MUG-CLASSIC", Quantity: 2}}); err != nil {
		t.Fatal(err)
	}
}

// keychainsAvailable is how many KEYCHAIN-GOPHER the demo catalog has.
const keychainsAvailable = 120

// sendCommand publishes the checkout saga's ReserveStock of one KEYCHAIN-GOPHER
// for orderID to the inventory's command topic, as the order service does.
func sendCommand(t *testing.T, broker, orderID string) {
	t.Helper()
	corr := saga.Correlation{SagaID: orderID, Step: checkoutv1.StepReserveStock, Op: saga.OpAction}
	env := &checkoutv1.Envelope{
		MessageId: uuid.NewString(), SagaId: orderID, Step: corr.Step, CorrelationId: orderID, OccurredAt: timestamppb.Now(),
		Payload: &checkoutv1.Envelope_ReserveStock{ReserveStock: &checkoutv1.ReserveStock{
			OrderId: orderID, Lines: []*checkoutv1.OrderLine{{Sku: "KEYCHAIN-GOPHER", Quantity: 1}},
		}},
	}
	value, err := checkoutv1.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	headers := []kafka.Header{{Key: outbox.HeaderMessageID, Value: []byte(env.MessageId)}}
	for k, v := range corr.Headers() {
		headers = append(headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	w := messaging.NewWriter(messaging.Config{Brokers: []string{broker}, ClientID: "test"})
	defer w.Close()
	err = w.WriteMessages(t.Context(), kafka.Message{Topic: checkoutv1.TopicInventoryCommands, Key: []byte(orderID), Value: value, Headers: headers})
	if err != nil {
		t.Fatalf("send ReserveStock: %v", err)
	}
}

// awaitReply reads the replies topic until the reply for orderID comes, and
// returns it; it fails the test after 30s.
func awaitReply(t *testing.T, broker, orderID string, svc *servicetest.Service) *checkoutv1.Envelope {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: []string{broker}, GroupID: "test-" + uuid.NewString(), Topic: checkoutv1.TopicReplies,
		StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for {
		msg, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("no reply for %s: %v\nlogs:\n%s", orderID, err, svc.Logs())
		}
		if string(msg.Key) != orderID {
			continue
		}
		env, err := checkoutv1.Unmarshal(msg.Value)
		if err != nil {
			t.Fatalf("reply for %s: %v", orderID, err)
		}
		return env
	}
}

// getText GETs url and returns the body of its 200 answer.
func getText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, %v; want 200", url, resp.StatusCode, err)
	}
	return string(body)
}

// getJSON GETs url, decodes the JSON body into v and returns the status.
func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: decode body: %v", url, err)
	}
	return resp.StatusCode
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	servicetest.CheckConfigRejected(t, run, map[string]string{
		"INVENTORY_CHAOS_CRASH_AFTER_HANDLE": "1.5",
		"INVENTORY_HTTP_ADDR":                "nowhere",
		"INVENTORY_DATABASE_URL":             "mysql://db",
		"INVENTORY_KAFKA_BROKERS":            "a:1,",
		"INVENTORY_SHUTDOWN_TIMEOUT":         "soon",
		"INVENTORY_LOG_LEVEL":                "chatty",
		"INVENTORY_RESERVATION_TTL":          "0s",
		"INVENTORY_EXPIRY_INTERVAL":          "often",
	})
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "INVENTORY_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}

// within returns a context that ends after d, for poll.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
