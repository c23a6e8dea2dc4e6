// Package db keeps orders in the order service's relational database,
// SQLite or PostgreSQL through GORM, as an order.Store. The schema is
// services/order/migrations.
//
// The same SQL runs on both engines. Idempotency rests on the UNIQUE
// (customer_id, idempotency_key) constraint, not on locks: SQLite has no
// SELECT ... FOR UPDATE.
package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/order/internal/order"
)

// Store is an order.Store on a migrated database, or on a transaction of
// one (InTx). It is safe for concurrent use, by several processes sharing
// the database too.
type Store struct {
	gdb *gorm.DB
	// inTx is true when gdb is a transaction: its writes need no
	// transaction of their own.
	inTx bool
}

var _ order.Store = (*Store)(nil)

// NewStore returns a Store on db, which must be migrated with
// services/order/migrations.
func NewStore(db *database.DB) *Store {
	return &Store{gdb: db.DB}
}

// InTx returns the Store working through tx, a transaction on the Store's
// database: what it writes commits or rolls back with tx. The checkout uses
// it to store an order with its saga and to move the order along with it.
func (s *Store) InTx(tx *gorm.DB) *Store {
	return &Store{gdb: tx, inTx: true}
}

// The tables' rows. CreatedAt and UpdatedAt are the domain's times, never
// GORM's: its automatic timestamps are switched off.
type (
	orderRow struct {
		ID             string `gorm:"primaryKey"`
		CustomerID     string
		Status         string
		TotalMinor     int64
		Currency       string
		CancelReason   string
		IdempotencyKey string
		RequestHash    string
		CreatedAt      time.Time `gorm:"autoCreateTime:false"`
		UpdatedAt      time.Time `gorm:"autoUpdateTime:false"`
	}
	lineRow struct {
		OrderID        string
		LineNo         int
		SKU            string `gorm:"column:sku"`
		Quantity       int64
		UnitPriceMinor int64
	}
	historyRow struct {
		OrderID string
		Seq     int
		Status  string
		Reason  string
		At      time.Time
	}
)

func (orderRow) TableName() string   { return "orders" }
func (lineRow) TableName() string    { return "order_lines" }
func (historyRow) TableName() string { return "order_status_history" }

// Insert implements order.Store. insert writes the order unless its key is
// taken, by a retry's first request or a concurrent one, whose order is then
// read back. Writing first costs a retry an INSERT that does nothing, and
// spares every new order a read.
func (s *Store) Insert(ctx context.Context, o order.Order, idem order.Idempotency) (order.Order, string, error) {
	inserted, err := s.insert(ctx, o, idem)
	switch {
	case err != nil:
		return order.Order{}, "", err
	case inserted:
		return o, idem.RequestHash, nil
	}
	stored, hash, err := s.byKey(ctx, o.CustomerID, idem.Key)
	if err != nil {
		return order.Order{}, "", fmt.Errorf("read the order stored under its key: %w", err)
	}
	return stored, hash, nil
}

// insert writes o, its lines and its history, atomically, and reports
// whether it did. The order row goes in with ON CONFLICT DO NOTHING on
// (customer_id, idempotency_key): when the key is taken, by a committed
// order or by a concurrent transaction that then commits, nothing is written
// and inserted is false. No error is raised, so nothing is logged as one,
// and a transaction insert is part of stays usable (PostgreSQL).
func (s *Store) insert(ctx context.Context, o order.Order, idem order.Idempotency) (inserted bool, err error) {
	err = s.atomically(ctx, func(tx *gorm.DB) error {
		row := orderRow{
			ID: o.ID, CustomerID: o.CustomerID, Status: string(o.Status),
			TotalMinor: o.Total.Minor, Currency: o.Total.Currency, CancelReason: o.CancelReason,
			IdempotencyKey: idem.Key, RequestHash: idem.RequestHash,
			CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC(),
		}
		res := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "customer_id"}, {Name: "idempotency_key"}},
			DoNothing: true,
		}).Create(&row)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		lines := make([]lineRow, len(o.Lines))
		for i, l := range o.Lines {
			lines[i] = lineRow{OrderID: o.ID, LineNo: i, SKU: l.SKU, Quantity: l.Quantity, UnitPriceMinor: l.UnitPrice.Minor}
		}
		if err := tx.Create(&lines).Error; err != nil {
			return err
		}
		history := make([]historyRow, len(o.History))
		for i, h := range o.History {
			history[i] = historyRow{OrderID: o.ID, Seq: i, Status: string(h.Status), Reason: h.Reason, At: h.At.UTC()}
		}
		if err := tx.Create(&history).Error; err != nil {
			return err
		}
		inserted = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("insert order: %w", err)
	}
	return inserted, nil
}

// atomically runs fn in a transaction of its own, or in the Store's if it
// has one (InTx).
func (s *Store) atomically(ctx context.Context, fn func(tx *gorm.DB) error) error {
	if s.inTx {
		return fn(s.gdb.WithContext(ctx))
	}
	return s.gdb.WithContext(ctx).Transaction(fn)
}

// byKey returns the order stored under (customerID, key) and its request
// hash, or order.ErrOrderNotFound.
func (s *Store) byKey(ctx context.Context, customerID, key string) (order.Order, string, error) {
	var row orderRow
	err := s.gdb.WithContext(ctx).
		Select("id", "request_hash").
		Where("customer_id = ? AND idempotency_key = ?", customerID, key).
		Take(&row).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return order.Order{}, "", order.ErrOrderNotFound
	case err != nil:
		return order.Order{}, "", fmt.Errorf("find order by idempotency key: %w", err)
	}
	o, err := s.Get(ctx, row.ID)
	return o, row.RequestHash, err
}

// orderWithHistory is one row of orders joined with one of its history rows.
type orderWithHistory struct {
	Order         orderRow `gorm:"embedded"`
	HistorySeq    int
	HistoryStatus string
	HistoryReason string
	HistoryAt     time.Time
}

// Get implements order.Store. The order and its history are read in one
// statement, so that its status and its history come from one snapshot;
// lines never change.
func (s *Store) Get(ctx context.Context, id string) (order.Order, error) {
	return s.read(ctx, s.gdb.WithContext(ctx), id)
}

// read is Get through q, a transaction or the database.
func (s *Store) read(ctx context.Context, q *gorm.DB, id string) (order.Order, error) {
	var rows []orderWithHistory
	err := q.WithContext(ctx).Raw(`
		SELECT o.*, h.seq AS history_seq, h.status AS history_status, h.reason AS history_reason, h.at AS history_at
		FROM orders o JOIN order_status_history h ON h.order_id = o.id
		WHERE o.id = ?
		ORDER BY h.seq`, id).Scan(&rows).Error
	if err != nil {
		return order.Order{}, fmt.Errorf("read order: %w", err)
	}
	if len(rows) == 0 {
		return order.Order{}, order.ErrOrderNotFound
	}
	o := rows[0].Order.toOrder()
	for _, r := range rows {
		o.History = append(o.History, order.StatusChange{Status: order.Status(r.HistoryStatus), Reason: r.HistoryReason, At: r.HistoryAt.UTC()})
	}
	lines, err := linesOf(q.WithContext(ctx), id)
	if err != nil {
		return order.Order{}, err
	}
	o.Lines = toLines(lines[id], o.Total.Currency)
	return o, nil
}

// List implements order.Store. The customer's index on (customer_id,
// created_at DESC, id DESC) serves the keyset condition and the order.
// Times are written and compared in UTC: SQLite keeps them as text, which
// sorts by time only when every value has the same offset.
func (s *Store) List(ctx context.Context, customerID string, after order.Cursor, limit int) ([]order.Order, error) {
	q := s.gdb.WithContext(ctx).Where("customer_id = ?", customerID)
	if !after.IsZero() {
		q = q.Where("(created_at, id) < (?, ?)", after.CreatedAt.UTC(), after.ID)
	}
	var rows []orderRow
	if err := q.Order("created_at DESC, id DESC").Limit(limit).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	if len(rows) == 0 {
		return nil, nil
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	lines, err := linesOf(s.gdb.WithContext(ctx), ids...)
	if err != nil {
		return nil, err
	}
	orders := make([]order.Order, len(rows))
	for i, r := range rows {
		orders[i] = r.toOrder()
		orders[i].Lines = toLines(lines[r.ID], r.Currency)
	}
	return orders, nil
}

// linesOf reads, through q, the line rows of the given orders by order id,
// in line order.
func linesOf(q *gorm.DB, orderIDs ...string) (map[string][]lineRow, error) {
	var rows []lineRow
	err := q.Where("order_id IN ?", orderIDs).Order("order_id, line_no").Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("read order lines: %w", err)
	}
	byOrder := make(map[string][]lineRow, len(orderIDs))
	for _, r := range rows {
		byOrder[r.OrderID] = append(byOrder[r.OrderID], r)
	}
	return byOrder, nil
}

// toLines turns line rows into lines priced in currency, the order's: an
// order has one currency, stored once.
func toLines(rows []lineRow, currency string) []order.Line {
	lines := make([]order.Line, len(rows))
	for i, r := range rows {
		lines[i] = order.Line{SKU: r.SKU, Quantity: r.Quantity, UnitPrice: money.Amount{Minor: r.UnitPriceMinor, Currency: currency}}
	}
	return lines
}

func (r orderRow) toOrder() order.Order {
	return order.Order{
		ID:           r.ID,
		CustomerID:   r.CustomerID,
		Status:       order.Status(r.Status),
		Total:        money.Amount{Minor: r.TotalMinor, Currency: r.Currency},
		CancelReason: r.CancelReason,
		CreatedAt:    r.CreatedAt.UTC(),
		UpdatedAt:    r.UpdatedAt.UTC(),
	}
}

// ErrNotPending is returned by Finish for an order that is no longer
// PENDING: it was confirmed or cancelled already.
var ErrNotPending = errors.New("order is not pending")

// AddHistory appends reasons, in order, to the history of order orderID,
// each with the order's current status, in one statement.
func (s *Store) AddHistory(ctx context.Context, orderID string, at time.Time, reasons ...string) error {
	if len(reasons) == 0 {
		return nil
	}
	// One row per reason, numbered from 1 after the order's last seq: the
	// subquery reads the snapshot before the statement, so every row sees
	// the same last seq. VALUES names its columns column1, column2 on both
	// engines.
	var values strings.Builder
	args := make([]any, 0, len(reasons)+2)
	args = append(args, at.UTC())
	for i, r := range reasons {
		if i > 0 {
			values.WriteString(", ")
		}
		values.WriteString("(" + strconv.Itoa(i+1) + ", ?)")
		args = append(args, r)
	}
	args = append(args, orderID)
	res := s.gdb.WithContext(ctx).Exec(`
		INSERT INTO order_status_history (order_id, seq, status, reason, at)
		SELECT o.id, (SELECT COALESCE(MAX(h.seq), -1) FROM order_status_history h WHERE h.order_id = o.id) + r.column1, o.status, r.column2, ?
		FROM orders o, (VALUES `+values.String()+`) AS r
		WHERE o.id = ?`, args...)
	switch {
	case res.Error != nil:
		return fmt.Errorf("add history of order %s: %w", orderID, res.Error)
	case res.RowsAffected == 0:
		return fmt.Errorf("add history of order %s: %w", orderID, order.ErrOrderNotFound)
	}
	return nil
}

// Finish moves the PENDING order orderID to status, CONFIRMED or CANCELLED
// (with cancelReason), and appends reason to its history, atomically. The
// UPDATE is conditional on PENDING, so an order is finished once whatever
// runs concurrently; otherwise it returns ErrNotPending and changes nothing.
func (s *Store) Finish(ctx context.Context, orderID string, status order.Status, cancelReason, reason string, at time.Time) error {
	return s.atomically(ctx, func(tx *gorm.DB) error {
		res := tx.Exec(
			"UPDATE orders SET status = ?, cancel_reason = ?, updated_at = ? WHERE id = ? AND status = ?",
			string(status), cancelReason, at.UTC(), orderID, string(order.StatusPending))
		switch {
		case res.Error != nil:
			return fmt.Errorf("finish order %s: %w", orderID, res.Error)
		case res.RowsAffected == 0:
			return fmt.Errorf("finish order %s as %s: %w", orderID, status, ErrNotPending)
		}
		return (&Store{gdb: tx, inTx: true}).AddHistory(ctx, orderID, at, reason)
	})
}
