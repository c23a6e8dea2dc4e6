// Package kafkaapi is the inventory's part in the checkout saga: it handles
// the saga's commands from Kafka (checkoutv1.TopicInventoryCommands) and
// answers each on checkoutv1.TopicReplies, through the outbox.
//
// Every command is handled in ONE database transaction: the saga barrier
// first, then the use case on an inventory.Service bound to the transaction,
// then the reply, written to the outbox. The reply is published if and only
// if the effect committed, and a redelivered command finds its barrier row
// and applies nothing twice.
//
//	command (saga-step, saga-op)                      barrier           effect        reply
//	ReserveStock (reserve-stock, action)              Proceed           Reserve       StockReserved, or StockRejected (unknown SKU,
//	                                                                                  insufficient stock, invalid lines; the barrier row
//	                                                                                  commits with the refusal)
//	                                                  Duplicate         none          StockReserved again if the reservation is held,
//	                                                                                  StockRejected if the first delivery was refused
//	                                                  Refused           none          StockRejected "refused: compensated before it arrived"
//	ReleaseStock (reserve-stock, compensate)          Proceed           Release       StockReleased (also when nothing was reserved, the
//	                                                                                  reservation had expired, or it was committed: the
//	                                                                                  sale is undone, below)
//	                                                  NullCompensation  none          StockReleased
//	                                                  Duplicate         none          StockReleased
//	CommitReservation (commit-reservation, action)    Proceed           Commit        ReservationCommitted, or CommitRejected when the
//	                                                                                  reservation is EXPIRED or RELEASED (below) or
//	                                                                                  there is none
//	                                                  Duplicate         none          ReservationCommitted if committed, else
//	                                                                                  CommitRejected again
//	                                                  Refused           none          CommitRejected "refused: compensated before it arrived"
//
// CommitReservation is the saga's last step, and the order service confirms
// an order only once it succeeded, so a commit can be refused, and a sale
// undone, without harm:
//
//   - CommitReservation of a reservation that has EXPIRED (its units went
//     back on sale after INVENTORY_RESERVATION_TTL) or was RELEASED cannot
//     sell units that other orders may hold by now. It is answered with
//     CommitRejected, and the saga refunds the payment and cancels the
//     order. It is logged at warn level and counted in
//     inventory_commit_after_expiry_total: a rising count means the TTL is
//     too short for the saga's deadlines (or, for RELEASED, that commits
//     arrive after their step's deadline), which cancels orders that were
//     slow, not wrong.
//   - ReleaseStock of a reservation already COMMITTED undoes the sale: its
//     units go back to available. The saga compensates only checkouts it did
//     not complete, so this is a commit that landed after its step's
//     deadline, of an order being cancelled that was never confirmed. A
//     CommitReservation arriving after the release finds the reservation
//     RELEASED and is rejected, so no unit is sold twice.
//
// Messages that can never be handled (no envelope, no saga correlation
// headers, a payload that is not an inventory command or that does not match
// its headers) fail with a messaging.Permanent error and go to the
// dead-letter topic; database errors are returned as they are, to be retried.
package kafkaapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/saga"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
)

// ReasonNoReservation is the reason of the CommitRejected that answers a
// CommitReservation of an order without a reservation.
const ReasonNoReservation = "the order has no reservation"

// ServiceInTx returns the inventory's use cases bound to tx, a transaction
// on the database the Handler was given: what they change commits or rolls
// back with tx. In the service it is
//
//	func(tx *gorm.DB) *inventory.Service { return service.WithStore(store.InTx(tx)) }
type ServiceInTx func(tx *gorm.DB) *inventory.Service

// Notifier is told after a reply was committed to the outbox: the service's
// outbox.Relay, which then publishes it at once.
type Notifier interface {
	Notify()
}

// Handler handles the checkout saga's inventory commands. Create it with
// NewHandler and give its Handle to a messaging.Consumer. It is safe for
// concurrent use.
type Handler struct {
	participant *saga.Participant
	service     ServiceInTx
	now         func() time.Time
	log         *slog.Logger
	// commitsAfterExpiry counts CommitReservations rejected because their
	// reservation had expired or been released.
	commitsAfterExpiry prometheus.Counter
}

// NewHandler returns a Handler working on db, a database migrated with the
// inventory's migrations, outbox.Migrate and saga.MigrateBarrier. service
// binds the use cases to a transaction on db; relay is notified of replies;
// now stamps the replies' occurred_at (time.Now in production). The metric
// inventory_commit_after_expiry_total is registered with reg (nil: not
// exported), which fails if reg has it already.
func NewHandler(db *database.DB, service ServiceInTx, relay Notifier, now func() time.Time, log *slog.Logger, reg prometheus.Registerer) (*Handler, error) {
	h := &Handler{
		participant: saga.NewParticipant(db, checkoutv1.TopicReplies, relay.Notify),
		service:     service,
		now:         now,
		log:         log,
		commitsAfterExpiry: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "inventory_commit_after_expiry_total",
			Help: "CommitReservation commands rejected because their reservation had expired or been released: the saga refunds and cancels those orders. " +
				"A rising count means INVENTORY_RESERVATION_TTL is too short for the checkout saga's deadlines.",
		}),
	}
	if reg != nil {
		if err := reg.Register(h.commitsAfterExpiry); err != nil {
			return nil, fmt.Errorf("new handler: register metrics: %w", err)
		}
	}
	return h, nil
}

// Handle handles one message of checkoutv1.TopicInventoryCommands; it is a
// messaging.Handler. It returns a messaging.Permanent error for a message
// that can never be handled, and other errors (database unavailable) for the
// consumer to retry; the transaction then rolled back, barrier row included.
func (h *Handler) Handle(ctx context.Context, msg kafka.Message) error {
	cmd, d, err := parseCommand(msg)
	if err != nil {
		return messaging.Permanent(err)
	}
	log := h.log.With(slog.String("order_id", d.SagaID), slog.String("step", d.Step),
		slog.String("op", d.Op), slog.String("message_id", d.MessageID))

	var reply *checkoutv1.Envelope
	outcome, err := h.participant.Pass(ctx, d, func(tx *gorm.DB, outcome saga.Outcome) (saga.EncodeReply, error) {
		var err error
		reply, err = h.apply(ctx, h.service(tx), cmd, outcome, log)
		if err != nil || reply == nil {
			return nil, err
		}
		return checkoutv1.ReplyEncoder(reply, d.SagaID, d.Step, d.MessageID, h.now()), nil
	})
	if err != nil {
		return fmt.Errorf("handle %s of order %s: %w", checkoutv1.PayloadName(cmd), d.SagaID, err)
	}
	if outcome != saga.Proceed {
		// A stable message and attribute: the chaos harness counts these
		// lines, which outlive a killed process where metrics do not.
		log.InfoContext(ctx, "saga barrier outcome", slog.String("barrier", outcome.String()))
	}
	replyName := "none"
	if reply != nil {
		replyName = checkoutv1.PayloadName(reply)
	}
	log.DebugContext(ctx, "command handled", slog.String("command", checkoutv1.PayloadName(cmd)),
		slog.String("barrier", outcome.String()), slog.String("reply", replyName))
	return nil
}

// apply applies cmd, which passed the barrier with outcome, through svc and
// returns the reply (only its payload set), or nil for no reply.
func (h *Handler) apply(ctx context.Context, svc *inventory.Service, cmd *checkoutv1.Envelope, outcome saga.Outcome, log *slog.Logger) (*checkoutv1.Envelope, error) {
	orderID := checkoutv1.OrderID(cmd)
	switch p := cmd.GetPayload().(type) {
	case *checkoutv1.Envelope_ReserveStock:
		return h.reserve(ctx, svc, orderID, p.ReserveStock, outcome, log)
	case *checkoutv1.Envelope_ReleaseStock:
		return h.release(ctx, svc, orderID, outcome)
	case *checkoutv1.Envelope_CommitReservation:
		return h.commit(ctx, svc, orderID, outcome, log)
	}
	return nil, fmt.Errorf("no use case for %s", checkoutv1.PayloadName(cmd)) // parseCommand let it through: a bug
}

// reserve answers ReserveStock.
func (h *Handler) reserve(ctx context.Context, svc *inventory.Service, orderID string, p *checkoutv1.ReserveStock, outcome saga.Outcome, log *slog.Logger) (*checkoutv1.Envelope, error) {
	switch outcome {
	case saga.Proceed:
		lines := make([]inventory.Line, len(p.GetLines()))
		for i, l := range p.GetLines() {
			lines[i] = inventory.Line{SKU: l.GetSku(), Quantity: l.GetQuantity()}
		}
		r, err := svc.Reserve(ctx, orderID, lines)
		if reason, sku, ok := refusal(err); ok {
			log.InfoContext(ctx, "stock rejected", slog.String("reason", reason))
			return stockRejected(orderID, reason, sku), nil
		}
		if err != nil {
			return nil, err
		}
		if r.Status != inventory.StatusPending {
			// Reserve returns an order's existing reservation unchanged; a
			// closed one holds nothing, and saying "reserved" would lie.
			return stockRejected(orderID, fmt.Sprintf("the order's reservation is %s", r.Status), ""), nil
		}
		return stockReserved(r), nil
	case saga.Duplicate:
		// The first delivery reserved (the reservation exists) or was
		// refused (it does not): answer the same again. The orchestrator
		// ignores a reply to a step no longer in flight.
		r, err := svc.Reservation(ctx, orderID)
		switch {
		case errors.Is(err, inventory.ErrReservationNotFound):
			return stockRejected(orderID, "rejected when first delivered", ""), nil
		case err != nil:
			return nil, err
		case r.Status == inventory.StatusPending || r.Status == inventory.StatusCommitted:
			return stockReserved(r), nil
		}
		return nil, nil // released or expired: the saga is past this step
	case saga.Refused:
		log.InfoContext(ctx, "reserve stock refused: compensated before it arrived")
		return stockRejected(orderID, checkoutv1.ReasonRefused, ""), nil
	}
	return nil, fmt.Errorf("barrier outcome %v for an action", outcome)
}

// refusal returns the reason (and SKU, if one is at fault) of a business
// refusal of Reserve, and false for any other error.
func refusal(err error) (reason, sku string, ok bool) {
	var (
		invalid      *inventory.ValidationError
		unknown      *inventory.UnknownProductError
		insufficient *inventory.InsufficientStockError
	)
	switch {
	case errors.As(err, &unknown):
		return unknown.Error(), unknown.SKU, true
	case errors.As(err, &insufficient):
		return insufficient.Error(), insufficient.SKU, true
	case errors.As(err, &invalid):
		return invalid.Error(), "", true
	}
	return "", "", false
}

// release answers ReleaseStock, the compensation of ReserveStock.
func (h *Handler) release(ctx context.Context, svc *inventory.Service, orderID string, outcome saga.Outcome) (*checkoutv1.Envelope, error) {
	switch outcome {
	case saga.Proceed:
		// Release also undoes a commit (see the package doc). Without a
		// reservation, the reserve was refused: nothing is held.
		if _, err := svc.Release(ctx, orderID); err != nil && !errors.Is(err, inventory.ErrReservationNotFound) {
			return nil, err
		}
		return stockReleased(orderID), nil
	case saga.NullCompensation, saga.Duplicate:
		// Nothing was reserved, or the first delivery released it all: a
		// released reservation never changes again.
		return stockReleased(orderID), nil
	}
	return nil, fmt.Errorf("barrier outcome %v for a compensation", outcome)
}

// commit answers CommitReservation.
func (h *Handler) commit(ctx context.Context, svc *inventory.Service, orderID string, outcome saga.Outcome, log *slog.Logger) (*checkoutv1.Envelope, error) {
	switch outcome {
	case saga.Proceed:
		_, err := svc.Commit(ctx, orderID)
		switch {
		case errors.Is(err, inventory.ErrReservationClosed):
			reply, err := commitAnswer(ctx, svc, orderID)
			if err != nil {
				return nil, err
			}
			h.commitsAfterExpiry.Inc()
			log.WarnContext(ctx, "commit rejected: the reservation closed before the commit arrived, the saga cancels the order; "+
				"if this happens often, INVENTORY_RESERVATION_TTL is too short for the checkout saga's deadlines",
				slog.String("reason", reply.GetCommitRejected().GetReason()))
			return reply, nil
		case errors.Is(err, inventory.ErrReservationNotFound):
			log.ErrorContext(ctx, "commit of an order that has no reservation: nothing to sell")
			return commitRejected(orderID, ReasonNoReservation), nil
		case err != nil:
			return nil, err
		}
		return reservationCommitted(orderID), nil
	case saga.Duplicate:
		// The first delivery committed or was rejected; say the same again
		// (not counted again). The orchestrator ignores a reply to a step no
		// longer in flight.
		return commitAnswer(ctx, svc, orderID)
	case saga.Refused:
		// Only a compensation of commit-reservation, which parseCommand
		// refuses, could have pre-empted it.
		log.WarnContext(ctx, "commit reservation refused by the barrier")
		return commitRejected(orderID, checkoutv1.ReasonRefused), nil
	}
	return nil, fmt.Errorf("barrier outcome %v for an action", outcome)
}

// commitAnswer returns the reply to a CommitReservation that the order's
// reservation, as it now is, calls for: ReservationCommitted if it is
// COMMITTED, else CommitRejected saying why nothing is sold.
func commitAnswer(ctx context.Context, svc *inventory.Service, orderID string) (*checkoutv1.Envelope, error) {
	r, err := svc.Reservation(ctx, orderID)
	switch {
	case errors.Is(err, inventory.ErrReservationNotFound):
		return commitRejected(orderID, ReasonNoReservation), nil
	case err != nil:
		return nil, err
	case r.Status == inventory.StatusCommitted:
		return reservationCommitted(orderID), nil
	}
	return commitRejected(orderID, fmt.Sprintf("the order's reservation is %s", r.Status)), nil
}

// parseCommand reads an inventory command and its delivery from msg, or
// says why it never can.
func parseCommand(msg kafka.Message) (*checkoutv1.Envelope, saga.Delivery, error) {
	cmd, role, err := checkoutv1.UnmarshalCommand(msg.Value, checkoutv1.TopicInventoryCommands)
	if err != nil {
		return nil, saga.Delivery{}, err
	}
	d, err := saga.ParseDelivery(messaging.Headers(msg), cmd.GetMessageId(), checkoutv1.OrderID(cmd), role.Step, role.Compensation)
	if err != nil {
		return nil, saga.Delivery{}, fmt.Errorf("%s: %w", checkoutv1.PayloadName(cmd), err)
	}
	return cmd, d, nil
}

func stockReserved(r inventory.Reservation) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReserved{StockReserved: &checkoutv1.StockReserved{
		OrderId: r.OrderID, ReservationId: r.ID, ExpiresAt: timestamppb.New(r.ExpiresAt),
	}}}
}

func stockRejected(orderID, reason, sku string) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockRejected{StockRejected: &checkoutv1.StockRejected{
		OrderId: orderID, Reason: reason, Sku: sku,
	}}}
}

func commitRejected(orderID, reason string) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_CommitRejected{CommitRejected: &checkoutv1.CommitRejected{
		OrderId: orderID, Reason: reason,
	}}}
}

func stockReleased(orderID string) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_StockReleased{StockReleased: &checkoutv1.StockReleased{OrderId: orderID}}}
}

func reservationCommitted(orderID string) *checkoutv1.Envelope {
	return &checkoutv1.Envelope{Payload: &checkoutv1.Envelope_ReservationCommitted{ReservationCommitted: &checkoutv1.ReservationCommitted{OrderId: orderID}}}
}
