package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/problem"
	"github.com/microshop/microshop/pkg/saga"
	"github.com/microshop/microshop/pkg/servicetest"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/payment/internal/db"
	"github.com/microshop/microshop/services/payment/internal/payment"
	"github.com/microshop/microshop/services/payment/internal/payment/paymenttest"
	pspclient "github.com/microshop/microshop/services/payment/internal/psp"
	"github.com/microshop/microshop/services/psp/simulator"
)

// TestRun wires the whole service in-process against real SQLite and
// PostgreSQL databases and a real Kafka-protocol broker.
func TestRun(t *testing.T) {
	broker := kafkatest.Start(t)
	cluster := pgtest.Start(t)
	psp := httptest.NewServer(simulator.New(simulator.Settings{}).Handler())
	defer psp.Close()
	databases := map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "payment.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
	for name, newDatabaseURL := range databases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{
				"PAYMENT_HTTP_ADDR":     servicetest.FreeAddr(t),
				"PAYMENT_DATABASE_URL":  newDatabaseURL(t),
				"PAYMENT_KAFKA_BROKERS": broker,
				"PAYMENT_PSP_URL":       psp.URL,
			}
			svc := servicetest.Start(t, run, env, "PAYMENT_HTTP_ADDR")

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

			// A payment charged through a real PSP simulator (by a second
			// Service on the same database: charging has no endpoint) is
			// served by the running service.
			charged := chargeOnSameDatabase(t, env["PAYMENT_DATABASE_URL"], env["PAYMENT_PSP_URL"])
			var one struct {
				ID, Status string
				Refunds    []any
			}
			getJSON(t, svc.URL+"/v1/payments/"+charged.ID, http.StatusOK, &one)
			if one.ID != charged.ID || one.Status != "CAPTURED" || one.Refunds == nil {
				t.Errorf("GET /v1/payments/%s = %+v, want the CAPTURED payment with refunds []", charged.ID, one)
			}
			var list struct{ Items []struct{ ID string } }
			getJSON(t, svc.URL+"/v1/payments?order_id="+charged.OrderID, http.StatusOK, &list)
			if len(list.Items) != 1 || list.Items[0].ID != charged.ID {
				t.Errorf("GET /v1/payments?order_id=%s = %+v, want the one payment", charged.OrderID, list)
			}
			getJSON(t, svc.URL+"/v1/payments/"+charged.ID+"x", http.StatusNotFound, &problem.Details{})

			// The running service answers a ChargePayment from Kafka through
			// its outbox, on the replies topic.
			order := "order-saga-" + name
			reply := chargeThroughKafka(t, broker, order)
			if captured := reply.GetPaymentCaptured(); captured.GetOrderId() != order || captured.GetPaymentId() == "" {
				t.Errorf("reply to ChargePayment = %v, want PaymentCaptured of %s", reply, order)
			}

			resp, err = http.Get(svc.URL + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			metrics, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(metrics), "messaging_consumed_total") {
				t.Errorf("GET /metrics = %d %v, want 200 with the consumer's metrics:\n%s", resp.StatusCode, err, metrics)
			}

			if err := svc.Stop(); err != nil {
				t.Fatalf("run returned %v after a graceful stop, want nil\nlogs:\n%s", err, svc.Logs())
			}
			if logs := svc.Logs(); !strings.Contains(logs, `"msg":"http server stopped"`) {
				t.Errorf("logs do not show a graceful HTTP stop:\n%s", logs)
			}
		})
	}
}

// chargeThroughKafka publishes the ChargePayment of order, as the order
// service does, and returns the reply to it read from the replies topic.
func chargeThroughKafka(t *testing.T, broker, order string) *checkoutv1.Envelope {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	corr := saga.Correlation{SagaID: order, Step: checkoutv1.StepChargePayment, Op: saga.OpAction}
	env := &checkoutv1.Envelope{
		MessageId: uuid.NewString(), SagaId: order, Step: corr.Step, CorrelationId: order, OccurredAt: timestamppb.Now(),
		Payload: &checkoutv1.Envelope_ChargePayment{ChargePayment: &checkoutv1.ChargePayment{
			OrderId: order, Amount: &checkoutv1.Money{MinorUnits: 1999, Currency: "EUR"},
			CardNumber: simulator.CardSucceeds, IdempotencyKey: checkoutv1.ChargeKey(order),
		}},
	}
	value, err := checkoutv1.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	msg := kafka.Message{Topic: checkoutv1.TopicPaymentCommands, Key: []byte(order), Value: value,
		Headers: []kafka.Header{{Key: outbox.HeaderMessageID, Value: []byte(env.MessageId)}}}
	for k, v := range corr.Headers() {
		msg.Headers = append(msg.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	cfg := messaging.Config{Brokers: []string{broker}, ClientID: "test"}
	w := messaging.NewWriter(cfg)
	defer w.Close()
	if err := w.WriteMessages(ctx, msg); err != nil {
		t.Fatalf("publish ChargePayment: %v", err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: cfg.Brokers, GroupID: "test-" + order,
		GroupTopics: []string{checkoutv1.TopicReplies}, StartOffset: kafka.FirstOffset, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for {
		got, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("no reply to ChargePayment of %s: %v", order, err)
		}
		if string(got.Key) != order {
			continue // another subtest's
		}
		if op, _ := messaging.Header(got, saga.HeaderOp); op != saga.OpAction {
			t.Errorf("reply header %s = %q, want %q", saga.HeaderOp, op, saga.OpAction)
		}
		reply, err := checkoutv1.Unmarshal(got.Value)
		if err != nil {
			t.Fatal(err)
		}
		if reply.GetCausationId() != env.MessageId {
			t.Errorf("reply causation id = %q, want the command's message id %q", reply.GetCausationId(), env.MessageId)
		}
		return reply
	}
}

// chargeOnSameDatabase charges a card with a Service of its own on the
// service's database, through the PSP at pspURL.
func chargeOnSameDatabase(t *testing.T, databaseURL, pspURL string) payment.Payment {
	t.Helper()
	client := pspclient.New(pspURL, 5*time.Second, nil)
	defer client.Close()
	svc := payment.NewService(db.NewStore(paymenttest.Open(t, databaseURL)), client, time.Now)
	p, err := svc.Charge(t.Context(), payment.ChargeRequest{
		OrderID: "order-wiring", Amount: money.Amount{Minor: 1999, Currency: "EUR"},
		CardNumber: simulator.CardSucceeds, IdempotencyKey: t.Name(), // one PSP charge per subtest
	})
	if err != nil || p.Status != payment.StatusCaptured {
		t.Fatalf("charge = %+v, %v; want CAPTURED", p, err)
	}
	return p
}

func getJSON(t *testing.T, url string, wantStatus int, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != wantStatus {
		t.Fatalf("GET %s = %d, want %d", url, resp.StatusCode, wantStatus)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	servicetest.CheckConfigRejected(t, run, map[string]string{
		"PAYMENT_CHAOS_CRASH_AFTER_HANDLE": "1.5",
		"PAYMENT_HTTP_ADDR":                "nowhere",
		"PAYMENT_DATABASE_URL":             "mysql://db",
		"PAYMENT_KAFKA_BROKERS":            "a:1,",
		"PAYMENT_SHUTDOWN_TIMEOUT":         "soon",
		"PAYMENT_LOG_LEVEL":                "chatty",
		"PAYMENT_PSP_URL":                  "ftp://psp",
		"PAYMENT_PSP_TIMEOUT":              "soon",
	})
}

func TestConfigurationIsDocumented(t *testing.T) {
	servicetest.CheckConfigDocumented(t, "../../README.md", "PAYMENT_", func(getenv func(string) string) error {
		_, err := loadConfig(getenv)
		return err
	})
}
