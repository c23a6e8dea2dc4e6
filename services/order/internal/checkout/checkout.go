// Package checkout is the order service's half of the checkout saga: it
// stores a new order and starts its saga in one transaction (Transact, the
// order.Transactor), runs the saga definition checkoutv1.Saga on a
// saga.Orchestrator, moves the order along with it (the hooks), writes the
// orchestrator's commands and the order events to the outbox, and handles
// the participants' replies.
//
// The saga reserves the stock, charges the payment and then commits the
// reservation (sells the stock). The order is CONFIRMED only once inventory
// answered the commit: a reservation that expired or was released meanwhile
// is refused, and the payment is refunded and the order CANCELLED.
//
// Everything it decides is written in the transaction of the saga
// transition that decided it: the order's status and history, the outbox
// rows of the commands and of the order events. It keeps no state outside
// the database, so any number of order replicas may run it side by side.
//
// The saga id is the order id. The saga's data holds the lines, the total
// and the card number: the card number lives nowhere else (not in the
// orders table, not in any API response or log line). A real shop would
// keep a token from its payment provider there instead.
package checkout

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/order/internal/order"
)

// Config tunes the checkout.
type Config struct {
	// ReserveTimeout is the deadline for inventory's reply to ReserveStock,
	// ChargeTimeout for payment's reply to ChargePayment, CommitTimeout for
	// inventory's reply to CommitReservation. All must be positive. A step
	// without a reply by then is compensated, and so are the steps before it.
	ReserveTimeout time.Duration
	ChargeTimeout  time.Duration
	CommitTimeout  time.Duration
	// Saga tunes the orchestrator (poll interval, retry backoff, clock).
	// Its Now is also the time of history rows and envelopes.
	Saga saga.Options
}

// Orders is the order store bound to one of the checkout's transactions (a
// *db.Store from InTx): new orders are stored, and the saga moves them
// along, through it.
type Orders interface {
	order.Store
	// AddHistory appends reasons, in order, to the history of order
	// orderID, each with the order's current status.
	AddHistory(ctx context.Context, orderID string, at time.Time, reasons ...string) error
	// Finish moves the PENDING order orderID to status, CONFIRMED or
	// CANCELLED (with cancelReason), and appends reason to its history.
	Finish(ctx context.Context, orderID string, status order.Status, cancelReason, reason string, at time.Time) error
}

// Checkout runs the checkout sagas of one order database. Create it with
// New. It is safe for concurrent use.
type Checkout struct {
	db     *gorm.DB
	orders func(tx *gorm.DB) Orders
	orch   *saga.Orchestrator
	now    func() time.Time
	notify func()
}

var _ order.Transactor = (*Checkout)(nil)

// New returns a Checkout on orderDB, migrated with the order migrations,
// saga.MigrateOrchestrator and outbox.Migrate, that reaches the orders
// through orders(tx), the order store bound to a transaction on orderDB. It
// writes its messages to the outbox and calls notify (the relay's Notify)
// after a transaction of its own that added some committed. Metrics go to
// reg (none if nil).
func New(orderDB *database.DB, orders func(tx *gorm.DB) Orders, cfg Config, notify func(), log *slog.Logger, reg prometheus.Registerer) (*Checkout, error) {
	if cfg.Saga.Now == nil {
		cfg.Saga.Now = time.Now
	}
	c := &Checkout{db: orderDB.DB, orders: orders, now: cfg.Saga.Now, notify: notify}
	def := saga.Definition{Name: checkoutv1.Saga, Steps: []saga.Step{
		{Name: checkoutv1.StepReserveStock, Timeout: cfg.ReserveTimeout, Action: c.reserveStock, Compensate: c.releaseStock},
		{Name: checkoutv1.StepChargePayment, Timeout: cfg.ChargeTimeout, Action: c.chargePayment, Compensate: c.refundPayment},
		// No compensation: a commit refused had no effect, and one that timed
		// out but took effect is undone by releaseStock, which inventory
		// applies to a committed reservation too.
		{Name: checkoutv1.StepCommitReservation, Timeout: cfg.CommitTimeout, Action: c.commitReservation},
	}}
	hooks := saga.Hooks{OnSteps: c.onSteps, OnCompleted: c.onCompleted, OnFailed: c.onFailed}
	orch, err := saga.NewOrchestrator(orderDB, outboxSender{}, []saga.Definition{def}, hooks, cfg.Saga, log, reg)
	if err != nil {
		return nil, fmt.Errorf("new checkout: %w", err)
	}
	c.orch = orch
	return c, nil
}

// Run compensates expired steps and re-sends unacknowledged compensations
// until ctx ends, resuming the sagas a previous process left in flight (see
// saga.Orchestrator.Run). Run it once, in its own goroutine.
func (c *Checkout) Run(ctx context.Context) { c.orch.Run(ctx) }

// RunOnce is one round of Run, for tests that move the clock.
func (c *Checkout) RunOnce(ctx context.Context) error { return c.orch.RunOnce(ctx) }

// Instance returns the saga of order orderID, for tests and operators.
func (c *Checkout) Instance(ctx context.Context, orderID string) (saga.Instance, error) {
	return c.orch.Instance(ctx, orderID)
}

// Transact implements order.Transactor: it runs fn in one transaction of the
// order database, with the order store and a checkout bound to it, and wakes
// the outbox relay once a transaction in which a checkout started has
// committed, so that its first command leaves at once.
func (c *Checkout) Transact(ctx context.Context, fn func(order.Store, order.Checkout) error) error {
	var st *starter
	err := c.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		st = &starter{c: c, tx: tx}
		return fn(c.orders(tx), st)
	})
	if err == nil && st.started {
		c.notify()
	}
	return err
}

// starter is the order.Checkout of one transaction of Transact.
type starter struct {
	c       *Checkout
	tx      *gorm.DB
	started bool
}

// Start implements order.Checkout: it starts o's saga (which sends
// ReserveStock) and adds the OrderPlaced event to the outbox.
func (s *starter) Start(ctx context.Context, o order.Order, pay order.Payment) error {
	d := data{Total: moneyData{Minor: o.Total.Minor, Currency: o.Total.Currency}, CardNumber: pay.CardNumber}
	for _, l := range o.Lines {
		d.Lines = append(d.Lines, lineData{SKU: l.SKU, Quantity: l.Quantity})
	}
	raw, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode saga data: %w", err)
	}
	if err := s.c.orch.Start(ctx, s.tx, checkoutv1.Saga, o.ID, raw); err != nil {
		return fmt.Errorf("start checkout: %w", err)
	}
	err = s.c.addEvent(ctx, s.tx, o.ID, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_OrderPlaced{OrderPlaced: &checkoutv1.OrderPlaced{
		OrderId: o.ID, CustomerId: o.CustomerID, Total: d.Total.proto(), Lines: d.protoLines(),
	}}})
	if err != nil {
		return fmt.Errorf("start checkout: %w", err)
	}
	s.started = true
	return nil
}

// data is the saga's data: what its commands need, as JSON.
type data struct {
	Lines      []lineData `json:"lines"`
	Total      moneyData  `json:"total"`
	CardNumber string     `json:"card_number"`
}

type lineData struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

type moneyData struct {
	Minor    int64  `json:"minor"`
	Currency string `json:"currency"`
}

func (m moneyData) proto() *checkoutv1.Money {
	return &checkoutv1.Money{MinorUnits: m.Minor, Currency: m.Currency}
}

func (d data) protoLines() []*checkoutv1.OrderLine {
	lines := make([]*checkoutv1.OrderLine, len(d.Lines))
	for i, l := range d.Lines {
		lines[i] = &checkoutv1.OrderLine{Sku: l.SKU, Quantity: l.Quantity}
	}
	return lines
}

// onSteps records every step outcome in the order's history, those of a
// transition with one statement; the order stays PENDING.
func (c *Checkout) onSteps(ctx context.Context, tx *gorm.DB, inst saga.Instance, outcomes []saga.StepOutcome) error {
	reasons := make([]string, len(outcomes))
	for i, o := range outcomes {
		reasons[i] = stepReason(inst, o.Step, o.Op, o.Outcome)
	}
	return c.orders(tx).AddHistory(ctx, inst.ID, c.at(), reasons...)
}

// stepReason says in the history what happened to a step, e.g.
// "reserve-stock succeeded" or "charge-payment refused: card declined".
func stepReason(inst saga.Instance, step, op, outcome string) string {
	if op == saga.OpCompensate {
		switch outcome {
		case saga.StepStarted:
			return step + " compensating"
		case saga.StepSucceeded:
			return step + " compensated"
		}
	}
	switch outcome {
	case saga.StepStarted:
		return step + " started"
	case saga.StepSucceeded:
		return step + " succeeded"
	case saga.StepFailed:
		return step + " refused: " + strings.TrimPrefix(inst.Reason, step+": ")
	case saga.StepTimedOut:
		return step + " timed out"
	}
	return step + " " + op + " " + strings.ToLower(outcome)
}

// onCompleted confirms the order and announces OrderConfirmed: the stock is
// sold (commit-reservation succeeded) and the payment captured.
func (c *Checkout) onCompleted(ctx context.Context, tx *gorm.DB, inst saga.Instance) error {
	if err := c.orders(tx).Finish(ctx, inst.ID, order.StatusConfirmed, "", "order confirmed", c.at()); err != nil {
		return err
	}
	return c.addEvent(ctx, tx, inst.ID, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_OrderConfirmed{OrderConfirmed: &checkoutv1.OrderConfirmed{OrderId: inst.ID}}})
}

// onFailed cancels the order with the saga's reason and announces
// OrderCancelled; every compensation has been acknowledged by now.
func (c *Checkout) onFailed(ctx context.Context, tx *gorm.DB, inst saga.Instance, reason string) error {
	if err := c.orders(tx).Finish(ctx, inst.ID, order.StatusCancelled, reason, "order cancelled: "+reason, c.at()); err != nil {
		return err
	}
	return c.addEvent(ctx, tx, inst.ID, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_OrderCancelled{OrderCancelled: &checkoutv1.OrderCancelled{OrderId: inst.ID, Reason: reason}}})
}

// addEvent adds env, an order event about orderID with its payload set, to
// the outbox through tx, with a new message id, keyed by the order id.
func (c *Checkout) addEvent(ctx context.Context, tx *gorm.DB, orderID string, env *checkoutv1.Envelope) error {
	id, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("new message id: %w", err)
	}
	cmd, err := c.message(orderID, id.String(), env)
	if err != nil {
		return err
	}
	return outbox.Add(ctx, tx, outbox.Message{ID: cmd.ID, Topic: cmd.Topic, Key: cmd.Key, Payload: cmd.Payload})
}

// message completes env, whose payload is set, as message id of saga (and
// order) sagaID, occurring now, and encodes it, once. Its topic is the
// payload's, its key the order id, and a command's step the one the
// contract gives its payload (checkoutv1.RoleOf).
func (c *Checkout) message(sagaID, id string, env *checkoutv1.Envelope) (saga.Command, error) {
	env.MessageId, env.SagaId, env.CorrelationId = id, sagaID, sagaID
	env.OccurredAt = timestamppb.New(c.now())
	if role, ok := checkoutv1.RoleOf(env); ok {
		env.Step = role.Step
	}
	value, err := checkoutv1.Marshal(env)
	if err != nil {
		return saga.Command{}, err
	}
	topic, err := checkoutv1.TopicOf(env)
	if err != nil {
		return saga.Command{}, err
	}
	return saga.Command{ID: id, Topic: topic, Key: sagaID, Payload: value}, nil
}

// at is the time of a history row, as the database keeps it.
func (c *Checkout) at() time.Time { return c.now().UTC().Truncate(time.Microsecond) }

// outboxSender is the saga.Sender: it writes the orchestrator's commands,
// encoded by the steps, to the outbox in the transition's transaction.
type outboxSender struct{}

func (outboxSender) Send(ctx context.Context, tx *gorm.DB, cmd saga.Command) error {
	return outbox.Add(ctx, tx, outbox.Message{ID: cmd.ID, Topic: cmd.Topic, Key: cmd.Key, Headers: cmd.Headers, Payload: cmd.Payload})
}

func parseData(inst saga.Instance) (data, error) {
	var d data
	if err := json.Unmarshal(inst.Data, &d); err != nil {
		return data{}, fmt.Errorf("decode data of saga %s: %w", inst.ID, err)
	}
	return d, nil
}

// The steps' commands. Each is encoded once, with the message id the
// orchestrator sends it with.

func (c *Checkout) reserveStock(_ context.Context, inst saga.Instance, id string) (saga.Command, error) {
	d, err := parseData(inst)
	if err != nil {
		return saga.Command{}, err
	}
	return c.message(inst.ID, id, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReserveStock{
		ReserveStock: &checkoutv1.ReserveStock{OrderId: inst.ID, Lines: d.protoLines()},
	}})
}

func (c *Checkout) releaseStock(_ context.Context, inst saga.Instance, id string) (saga.Command, error) {
	return c.message(inst.ID, id, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReleaseStock{
		ReleaseStock: &checkoutv1.ReleaseStock{OrderId: inst.ID},
	}})
}

func (c *Checkout) chargePayment(_ context.Context, inst saga.Instance, id string) (saga.Command, error) {
	d, err := parseData(inst)
	if err != nil {
		return saga.Command{}, err
	}
	return c.message(inst.ID, id, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ChargePayment{
		ChargePayment: &checkoutv1.ChargePayment{
			OrderId: inst.ID, Amount: d.Total.proto(), CardNumber: d.CardNumber, IdempotencyKey: checkoutv1.ChargeKey(inst.ID),
		},
	}})
}

func (c *Checkout) refundPayment(_ context.Context, inst saga.Instance, id string) (saga.Command, error) {
	d, err := parseData(inst)
	if err != nil {
		return saga.Command{}, err
	}
	return c.message(inst.ID, id, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_RefundPayment{
		RefundPayment: &checkoutv1.RefundPayment{OrderId: inst.ID, Amount: d.Total.proto(), IdempotencyKey: checkoutv1.RefundKey(inst.ID)},
	}})
}

func (c *Checkout) commitReservation(_ context.Context, inst saga.Instance, id string) (saga.Command, error) {
	return c.message(inst.ID, id, &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_CommitReservation{
		CommitReservation: &checkoutv1.CommitReservation{OrderId: inst.ID},
	}})
}
