package checkout_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/kafkatest"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
	"github.com/microshop/microshop/pkg/poll"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/checkout"
	"github.com/microshop/microshop/services/order/internal/checkout/checkouttest"
	"github.com/microshop/microshop/services/order/internal/db"
	"github.com/microshop/microshop/services/order/internal/order"
	"github.com/microshop/microshop/services/order/internal/order/ordertest"
	"github.com/microshop/microshop/services/order/migrations"
)

// harness is the order service's saga machinery on a real database and a
// real broker: the outbox relay, the orchestrator's Run and the replies
// consumer, each in a goroutine, as cmd/order wires them.
type harness struct {
	db     *database.DB
	sagas  *checkout.Checkout
	orders *order.Service
	store  *db.Store
	broker string
}

// fast timeouts keep the timeout case short; the fakes answer in
// milliseconds, well within every deadline, even with the whole suite
// sharing two cores (a 2s charge deadline was missed once under a load
// average above 10, with make test beside other builds: 5s, as the others). A compensation is re-sent only after 5s: the fakes
// acknowledge it long before, so the tests that compare the commands
// received exactly never see a re-send.
var fast = checkout.Config{
	ReserveTimeout: 5 * time.Second,
	ChargeTimeout:  5 * time.Second,
	CommitTimeout:  5 * time.Second,
	Saga:           saga.Options{PollInterval: 50 * time.Millisecond, RetryBackoffMin: 5 * time.Second, RetryBackoffMax: 10 * time.Second},
}

// setup tunes a harness. The zero value is the real clock and the
// checkout as cmd/order wires it.
type setup struct {
	// wrap, if set, wraps the transactor the use cases place orders with.
	wrap func(order.Transactor) order.Transactor
	// clock, if set, is the clock of the sagas and the orders: no deadline
	// passes until the test advances it.
	clock *ordertest.Clock
}

func start(t *testing.T, databaseURL string, s setup) *harness {
	t.Helper()
	ctx := t.Context()
	log := slog.New(slog.DiscardHandler)
	orderDB, err := database.OpenMigrated(ctx, databaseURL, migrations.FS, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orderDB.Close() })
	if err := outbox.Migrate(ctx, orderDB, log); err != nil {
		t.Fatal(err)
	}
	if err := saga.MigrateOrchestrator(ctx, orderDB, log); err != nil {
		t.Fatal(err)
	}
	broker := kafkatest.Start(t)
	kafka := messaging.Config{Brokers: []string{broker}, ClientID: "order"}
	writer := messaging.NewWriter(kafka)
	relay, err := outbox.NewRelay(orderDB, writer, outbox.RelayOptions{PollInterval: 20 * time.Millisecond}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, now := fast, time.Now
	if s.clock != nil {
		cfg.Saga.Now, now = s.clock.Now, s.clock.Now
	}
	store := db.NewStore(orderDB)
	sagas, err := checkout.New(orderDB, func(tx *gorm.DB) checkout.Orders { return store.InTx(tx) }, cfg, relay.Notify, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config: kafka, GroupID: "order", Topics: []string{checkoutv1.TopicReplies},
		DeadLetterTopic: checkoutv1.DLQTopic(checkoutv1.TopicReplies),
		MaxWait:         50 * time.Millisecond, MinBackoff: 50 * time.Millisecond,
	}, sagas.HandleReply, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	bg, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 3)
	go func() { relay.Run(bg); done <- struct{}{} }()
	go func() { sagas.Run(bg); done <- struct{}{} }()
	go func() { _ = consumer.Run(bg); done <- struct{}{} }()
	t.Cleanup(func() {
		stop()
		for range 3 {
			<-done
		}
		consumer.Close()
		writer.Close()
	})
	var checkouts order.Transactor = sagas
	if s.wrap != nil {
		checkouts = s.wrap(sagas)
	}
	return &harness{db: orderDB, sagas: sagas, store: store, orders: order.NewService(store, checkouts, now), broker: broker}
}

func databases(t *testing.T) map[string]func(t *testing.T) string {
	cluster := pgtest.Start(t)
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "order.db") },
		"postgres": func(t *testing.T) string { return pgtest.NewDatabase(t, cluster) },
	}
}

func place(t *testing.T, h *harness, card string) order.Order {
	t.Helper()
	o, created, err := h.orders.Create(t.Context(), order.CreateRequest{
		CustomerID: "alice", IdempotencyKey: "k-" + card, CardNumber: card,
		Lines: []order.Line{{SKU: "MUG", Quantity: 2, UnitPrice: money.Amount{Minor: 1250, Currency: "EUR"}}},
	})
	if err != nil || !created {
		t.Fatalf("Create = created %v, %v", created, err)
	}
	return o
}

// within returns a context that ends after d, for poll.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFinal polls the order until it is CONFIRMED or CANCELLED.
func waitFinal(t *testing.T, h *harness, id string) order.Order {
	t.Helper()
	var o order.Order
	poll.UntilNil(within(t, 20*time.Second), t, "the order CONFIRMED or CANCELLED", func() error {
		var err error
		if o, err = h.orders.Get(t.Context(), id, ""); err != nil {
			return err
		}
		if o.Status == order.StatusPending {
			return fmt.Errorf("still PENDING: %+v", o)
		}
		return nil
	})
	return o
}

// waitCommands polls until the fakes received want for the order.
func waitCommands(t *testing.T, p *checkouttest.Participants, id string, want []string) {
	t.Helper()
	poll.UntilNil(within(t, 20*time.Second), t, fmt.Sprintf("commands %v", want), func() error {
		if got := p.Commands(id); !slices.Equal(got, want) {
			return fmt.Errorf("commands received = %v", got)
		}
		return nil
	})
}

// events returns the names of the order events in the outbox for id, and
// waits until the relay published them all.
func events(t *testing.T, h *harness, id string) []string {
	t.Helper()
	var names []string
	poll.UntilNil(within(t, 10*time.Second), t, "the order events all published", func() error {
		var rows []struct {
			Payload []byte
			SentAt  *time.Time
		}
		err := h.db.WithContext(t.Context()).Raw("SELECT payload, sent_at FROM outbox WHERE key = ? AND topic = ? ORDER BY seq", id, checkoutv1.TopicOrderEvents).Scan(&rows).Error
		if err != nil {
			return err
		}
		names = nil
		pending := false
		for _, r := range rows {
			env, err := checkoutv1.Unmarshal(r.Payload)
			if err != nil {
				return err
			}
			names = append(names, checkouttest.Name(env))
			pending = pending || r.SentAt == nil
		}
		if pending {
			return fmt.Errorf("order events %v not all published", names)
		}
		return nil
	})
	return names
}

func history(o order.Order) []string {
	var h []string
	for _, c := range o.History {
		h = append(h, string(c.Status)+" "+c.Reason)
	}
	return h
}

// TestSaga runs the checkout against fake participants over the real broker
// on both databases.
func TestSaga(t *testing.T) {
	tests := []struct {
		name         string
		fakes        checkouttest.Options
		wantStatus   order.Status
		wantReason   string
		wantCommands []string
		wantHistory  []string
		wantEvents   []string
	}{
		{
			name: "happy path", wantStatus: order.StatusConfirmed,
			wantCommands: []string{"ReserveStock", "ChargePayment", "CommitReservation"},
			wantHistory: []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
				"PENDING charge-payment started", "PENDING charge-payment succeeded",
				"PENDING commit-reservation started", "PENDING commit-reservation succeeded", "CONFIRMED order confirmed"},
			wantEvents: []string{"OrderPlaced", "OrderConfirmed"},
		},
		{
			name: "duplicate replies", fakes: checkouttest.Options{Times: 2}, wantStatus: order.StatusConfirmed,
			wantCommands: []string{"ReserveStock", "ChargePayment", "CommitReservation"},
			wantHistory: []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
				"PENDING charge-payment started", "PENDING charge-payment succeeded",
				"PENDING commit-reservation started", "PENDING commit-reservation succeeded", "CONFIRMED order confirmed"},
			wantEvents: []string{"OrderPlaced", "OrderConfirmed"},
		},
		{
			name: "stock rejected", fakes: checkouttest.Options{RejectStock: "insufficient stock: MUG"},
			wantStatus: order.StatusCancelled, wantReason: "reserve-stock: insufficient stock: MUG",
			wantCommands: []string{"ReserveStock"},
			wantHistory: []string{"PENDING order placed", "PENDING reserve-stock started",
				"PENDING reserve-stock refused: insufficient stock: MUG", "CANCELLED order cancelled: reserve-stock: insufficient stock: MUG"},
			wantEvents: []string{"OrderPlaced", "OrderCancelled"},
		},
		{
			name: "payment declined", fakes: checkouttest.Options{DeclinePayment: "card_declined"},
			wantStatus: order.StatusCancelled, wantReason: "charge-payment: card_declined",
			wantCommands: []string{"ReserveStock", "ChargePayment", "ReleaseStock"},
			wantHistory: []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
				"PENDING charge-payment started", "PENDING charge-payment refused: card_declined",
				"PENDING reserve-stock compensating", "PENDING reserve-stock compensated",
				"CANCELLED order cancelled: charge-payment: card_declined"},
			wantEvents: []string{"OrderPlaced", "OrderCancelled"},
		},
		{
			name: "payment times out", fakes: checkouttest.Options{SilentPayment: true},
			wantStatus: order.StatusCancelled, wantReason: "charge-payment: timed out",
			wantCommands: []string{"ReserveStock", "ChargePayment", "RefundPayment", "ReleaseStock"},
			wantHistory: []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
				"PENDING charge-payment started", "PENDING charge-payment timed out",
				"PENDING charge-payment compensating", "PENDING charge-payment compensated",
				"PENDING reserve-stock compensating", "PENDING reserve-stock compensated",
				"CANCELLED order cancelled: charge-payment: timed out"},
			wantEvents: []string{"OrderPlaced", "OrderCancelled"},
		},
		{
			// The reservation expired before the commit arrived: nothing was
			// sold, so the payment is refunded and the stock released.
			name: "commit rejected", fakes: checkouttest.Options{RejectCommit: "the order's reservation is EXPIRED"},
			wantStatus: order.StatusCancelled, wantReason: "commit-reservation: the order's reservation is EXPIRED",
			wantCommands: []string{"ReserveStock", "ChargePayment", "CommitReservation", "RefundPayment", "ReleaseStock"},
			wantHistory: []string{"PENDING order placed", "PENDING reserve-stock started", "PENDING reserve-stock succeeded",
				"PENDING charge-payment started", "PENDING charge-payment succeeded",
				"PENDING commit-reservation started", "PENDING commit-reservation refused: the order's reservation is EXPIRED",
				"PENDING charge-payment compensating", "PENDING charge-payment compensated",
				"PENDING reserve-stock compensating", "PENDING reserve-stock compensated",
				"CANCELLED order cancelled: commit-reservation: the order's reservation is EXPIRED"},
			wantEvents: []string{"OrderPlaced", "OrderCancelled"},
		},
	}
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					t.Parallel()
					h := start(t, newURL(t), setup{})
					fakes := checkouttest.Start(t, h.broker, checkouttest.Behave(tt.fakes))
					placed := place(t, h, "4242424242424242")
					got := waitFinal(t, h, placed.ID)
					waitCommands(t, fakes, placed.ID, tt.wantCommands)
					if got.Status != tt.wantStatus || got.CancelReason != tt.wantReason {
						t.Errorf("order = %s %q, want %s %q", got.Status, got.CancelReason, tt.wantStatus, tt.wantReason)
					}
					if diff := cmp.Diff(tt.wantHistory, history(got)); diff != "" {
						t.Errorf("history (-want +got):\n%s", diff)
					}
					if diff := cmp.Diff(tt.wantEvents, events(t, h, placed.ID)); diff != "" {
						t.Errorf("order events (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

// failingStart runs the use case's transaction and then fails, as a later
// write of the order's transaction could.
type failingStart struct{ order.Transactor }

var errLater = errors.New("a later write failed")

func (f failingStart) Transact(ctx context.Context, fn func(order.Store, order.Checkout) error) error {
	return f.Transactor.Transact(ctx, func(store order.Store, c order.Checkout) error {
		if err := fn(store, c); err != nil {
			return err
		}
		return errLater
	})
}

// TestCreateRolledBack checks that the order, its saga and its outbox
// messages are one transaction: rolled back, nothing of them remains.
func TestCreateRolledBack(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			h := start(t, newURL(t), setup{wrap: func(c order.Transactor) order.Transactor { return failingStart{c} }})
			_, _, err := h.orders.Create(t.Context(), order.CreateRequest{
				CustomerID: "alice", IdempotencyKey: "k", CardNumber: "4242424242424242",
				Lines: []order.Line{{SKU: "MUG", Quantity: 1, UnitPrice: money.Amount{Minor: 100, Currency: "EUR"}}},
			})
			if !errors.Is(err, errLater) {
				t.Fatalf("Create error = %v, want errLater", err)
			}
			for _, table := range []string{"orders", "order_status_history", "saga_instances", "saga_steps", "outbox"} {
				var n int64
				if err := h.db.WithContext(t.Context()).Table(table).Count(&n).Error; err != nil {
					t.Fatal(err)
				}
				if n != 0 {
					t.Errorf("%s has %d rows after the rollback, want 0", table, n)
				}
			}
		})
	}
}

// TestChargeCarriesThePayment checks what ChargePayment tells payment: the
// total, the card and the idempotency key of the contract.
func TestChargeCarriesThePayment(t *testing.T) {
	h := start(t, "sqlite:"+filepath.Join(t.TempDir(), "order.db"), setup{})
	fakes := checkouttest.Start(t, h.broker, checkouttest.Behave(checkouttest.Options{}))
	placed := place(t, h, "4000000000000002")
	waitFinal(t, h, placed.ID)
	waitCommands(t, fakes, placed.ID, []string{"ReserveStock", "ChargePayment", "CommitReservation"})
	charge := fakes.Received(placed.ID)[1].GetChargePayment()
	want := []any{placed.ID, int64(2500), "EUR", "4000000000000002", checkoutv1.ChargeKey(placed.ID)}
	got := []any{charge.GetOrderId(), charge.GetAmount().GetMinorUnits(), charge.GetAmount().GetCurrency(), charge.GetCardNumber(), charge.GetIdempotencyKey()}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ChargePayment (-want +got):\n%s", diff)
	}
}
