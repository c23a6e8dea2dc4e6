// Package db keeps the inventory in a relational database through GORM:
// SQLite or PostgreSQL, the same code and SQL on both (see pkg/database).
//
// Correctness never rests on row locks, which SQLite does not have. Every
// change of stock is a conditional UPDATE (... WHERE available >= ?) whose
// affected-row count is checked, every change of a reservation's status is
// conditional on the status it changes from (... WHERE status = 'PENDING'),
// and CHECK constraints keep the counters from going negative whatever the
// code does. Transactions touch the reservation row first and then stock
// rows in SKU order, so that on Postgres, where those UPDATEs do lock rows,
// two transactions never wait for each other in a circle.
package db

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/money"
	"github.com/microshop/microshop/services/inventory/internal/inventory"
)

var _ inventory.Store = (*Store)(nil)

// errOrderReserved reports, inside CreateReservation, that the order already
// has a reservation.
var errOrderReserved = errors.New("order already has a reservation")

// Store is the inventory.Store of a migrated inventory database (see
// services/inventory/migrations). It is safe for concurrent use.
//
// A Store returned by InTx works inside a caller's transaction instead: its
// methods that need a transaction of their own open a nested one (a
// SAVEPOINT), so a failed call undoes only its own changes and the caller's
// transaction goes on.
type Store struct {
	// db is the connection pool, or the caller's transaction for InTx.
	db *gorm.DB
	// collateC follows a text expression that must sort and change case
	// byte-wise, as SQLite does: " COLLATE "C"" on Postgres, whose database
	// default may be a natural-language collation (en_US sorts "MUG-B"
	// after "MUGA" and lowercases "É"), and "" on SQLite.
	collateC string
}

// NewStore returns a Store over db.
func NewStore(db *database.DB) *Store {
	s := &Store{db: db.DB}
	if db.Dialect() == database.Postgres {
		s.collateC = ` COLLATE "C"`
	}
	return s
}

// InTx returns a Store that reads and writes through tx, a transaction the
// caller began on s's database (with Transaction or Begin), so that the use
// cases run on it commit or roll back with whatever else tx does, such as a
// saga barrier row and an outbox message. It is as safe for concurrent use
// as tx is, which is to say not: use it from the goroutine that owns tx, and
// not after tx has ended.
func (s *Store) InTx(tx *gorm.DB) *Store {
	return &Store{db: tx, collateC: s.collateC}
}

// productRow is a row of products joined with its stock.
type productRow struct {
	SKU         string
	Name        string
	Description string
	PriceMinor  int64
	Currency    string
	ImageRef    string
	Available   int64
	Reserved    int64
}

func (r productRow) product() inventory.ProductWithStock {
	return inventory.ProductWithStock{
		Product: inventory.Product{
			SKU:         r.SKU,
			Name:        r.Name,
			Description: r.Description,
			Price:       money.Amount{Minor: r.PriceMinor, Currency: r.Currency},
			ImageRef:    r.ImageRef,
		},
		Stock: inventory.Stock{SKU: r.SKU, Available: r.Available, Reserved: r.Reserved},
	}
}

// products starts a query of products with their stock.
func (s *Store) products(ctx context.Context) *gorm.DB {
	return s.db.WithContext(ctx).
		Table("products AS p").
		Select("p.sku, p.name, p.description, p.price_minor, p.currency, p.image_ref, s.available, s.reserved").
		Joins("JOIN stock AS s ON s.sku = p.sku")
}

// ListProducts implements inventory.Catalog.
func (s *Store) ListProducts(ctx context.Context, f inventory.Filter, afterSKU string, limit int) ([]inventory.ProductWithStock, error) {
	sku := "p.sku" + s.collateC
	q := s.products(ctx).Where(sku+" > ?", afterSKU).Order(sku).Limit(limit)
	if f.Query != "" {
		// LOWER folds ASCII letters only on SQLite, and on Postgres under
		// COLLATE "C"; lowering the pattern the same way keeps both engines
		// in step.
		pattern := "%" + likeEscaper.Replace(lowerASCII(f.Query)) + "%"
		q = q.Where(fmt.Sprintf(`(LOWER(p.name%[1]s) LIKE ? ESCAPE '\' OR LOWER(p.description%[1]s) LIKE ? ESCAPE '\')`, s.collateC), pattern, pattern)
	}
	if f.InStockOnly {
		q = q.Where("s.available > 0")
	}
	var rows []productRow
	if err := q.Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("select products: %w", err)
	}
	items := make([]inventory.ProductWithStock, len(rows))
	for i, r := range rows {
		items[i] = r.product()
	}
	return items, nil
}

// likeEscaper makes the LIKE wildcards of a search text match themselves.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// lowerASCII lowercases the ASCII letters of s and nothing else, as SQLite's
// LOWER does. Bytes of multi-byte UTF-8 characters are all above 0x7F, so
// they pass untouched.
func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

// Product implements inventory.Catalog.
func (s *Store) Product(ctx context.Context, sku string) (inventory.ProductWithStock, error) {
	var rows []productRow
	if err := s.products(ctx).Where("p.sku = ?", sku).Scan(&rows).Error; err != nil {
		return inventory.ProductWithStock{}, fmt.Errorf("select product: %w", err)
	}
	if len(rows) == 0 {
		return inventory.ProductWithStock{}, inventory.ErrProductNotFound
	}
	return rows[0].product(), nil
}

// AdjustStock implements inventory.Catalog.
func (s *Store) AdjustStock(ctx context.Context, sku string, delta int64) (inventory.Stock, error) {
	var rows []inventory.Stock
	err := s.db.WithContext(ctx).Raw(
		"UPDATE stock SET available = available + ? WHERE sku = ? AND available + ? >= 0 RETURNING sku, available, reserved",
		delta, sku, delta).Scan(&rows).Error
	if err != nil {
		return inventory.Stock{}, fmt.Errorf("update stock: %w", err)
	}
	if len(rows) == 1 {
		return rows[0], nil
	}
	available, err := availableUnits(s.db.WithContext(ctx), sku)
	if err != nil {
		return inventory.Stock{}, err
	}
	return inventory.Stock{}, &inventory.InsufficientStockError{SKU: sku, Requested: -delta, Available: available}
}

// availableUnits returns the available units of sku, or ErrProductNotFound.
func availableUnits(tx *gorm.DB, sku string) (int64, error) {
	var available []int64
	if err := tx.Raw("SELECT available FROM stock WHERE sku = ?", sku).Scan(&available).Error; err != nil {
		return 0, fmt.Errorf("select stock: %w", err)
	}
	if len(available) == 0 {
		return 0, inventory.ErrProductNotFound
	}
	return available[0], nil
}

// CreateReservation implements inventory.Reservations. r.Lines must name
// distinct SKUs.
func (s *Store) CreateReservation(ctx context.Context, r inventory.Reservation) (inventory.Reservation, error) {
	r.Lines = slices.SortedFunc(slices.Values(r.Lines), func(a, b inventory.Line) int { return cmp.Compare(a.SKU, b.SKU) })
	r.ExpiresAt, r.CreatedAt, r.UpdatedAt = dbTime(r.ExpiresAt), dbTime(r.CreatedAt), dbTime(r.UpdatedAt)

	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// The reservation row goes first: a second one for the order is
		// skipped on the UNIQUE order_id before it touches stock. On Postgres
		// the insert waits there for a concurrent first one to commit (skip)
		// or roll back (insert).
		res := tx.Exec("INSERT INTO reservations (id, order_id, status, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id) DO NOTHING",
			r.ID, r.OrderID, string(r.Status), r.ExpiresAt, r.CreatedAt, r.UpdatedAt)
		if res.Error != nil {
			return fmt.Errorf("insert reservation: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return errOrderReserved
		}
		for _, l := range r.Lines {
			res := tx.Exec("UPDATE stock SET available = available - ?, reserved = reserved + ? WHERE sku = ? AND available >= ?",
				l.Quantity, l.Quantity, l.SKU, l.Quantity)
			if res.Error != nil {
				return fmt.Errorf("update stock of %s: %w", l.SKU, res.Error)
			}
			if res.RowsAffected == 0 {
				return whyNotReserved(tx, l)
			}
			err := tx.Exec("INSERT INTO reservation_lines (reservation_id, sku, quantity) VALUES (?, ?, ?)",
				r.ID, l.SKU, l.Quantity).Error
			if err != nil {
				return fmt.Errorf("insert reservation line %s: %w", l.SKU, err)
			}
		}
		return nil
	})
	if errors.Is(err, errOrderReserved) {
		return s.Reservation(ctx, r.OrderID)
	}
	if err != nil {
		return inventory.Reservation{}, err
	}
	return r, nil
}

// whyNotReserved explains why the conditional UPDATE reserving l changed no
// row: the product does not exist, or too few units are available.
func whyNotReserved(tx *gorm.DB, l inventory.Line) error {
	available, err := availableUnits(tx, l.SKU)
	if errors.Is(err, inventory.ErrProductNotFound) {
		return &inventory.UnknownProductError{SKU: l.SKU}
	}
	if err != nil {
		return err
	}
	return &inventory.InsufficientStockError{SKU: l.SKU, Requested: l.Quantity, Available: available}
}

// Reservation implements inventory.Reservations.
func (s *Store) Reservation(ctx context.Context, orderID string) (inventory.Reservation, error) {
	return readReservation(s.db.WithContext(ctx), "order_id", orderID)
}

// readReservation reads the reservation whose column key (id or order_id)
// is value, with its lines, in one statement: a row per line.
func readReservation(tx *gorm.DB, key, value string) (inventory.Reservation, error) {
	var rows []struct {
		ID        string
		OrderID   string
		Status    string
		ExpiresAt time.Time
		CreatedAt time.Time
		UpdatedAt time.Time
		SKU       sql.NullString `gorm:"column:sku"`
		Quantity  sql.NullInt64
	}
	err := tx.Raw(`SELECT r.id, r.order_id, r.status, r.expires_at, r.created_at, r.updated_at, l.sku, l.quantity
		FROM reservations AS r LEFT JOIN reservation_lines AS l ON l.reservation_id = r.id
		WHERE r.`+key+` = ?`, value).
		Scan(&rows).Error
	if err != nil {
		return inventory.Reservation{}, fmt.Errorf("select reservation: %w", err)
	}
	if len(rows) == 0 {
		return inventory.Reservation{}, inventory.ErrReservationNotFound
	}
	var lines []inventory.Line
	for _, r := range rows {
		if r.SKU.Valid { // a reservation without lines has one row, of NULLs
			lines = append(lines, inventory.Line{SKU: r.SKU.String, Quantity: r.Quantity.Int64})
		}
	}
	// Sorted here rather than by ORDER BY, whose order depends on the
	// collation: CloseReservation must lock stock rows in CreateReservation's order.
	slices.SortFunc(lines, func(a, b inventory.Line) int { return cmp.Compare(a.SKU, b.SKU) })
	row := rows[0]
	return inventory.Reservation{
		ID:        row.ID,
		OrderID:   row.OrderID,
		Lines:     lines,
		Status:    inventory.Status(row.Status),
		ExpiresAt: row.ExpiresAt.UTC(),
		CreatedAt: row.CreatedAt.UTC(),
		UpdatedAt: row.UpdatedAt.UTC(),
	}, nil
}

// transition is a change of a reservation's status and what it does to the
// stock of each of its lines.
type transition struct {
	from inventory.Status
	// unreserve takes the line's units out of reserved; restock adds them
	// to available.
	unreserve, restock bool
}

// transitions returns the changes of status that lead to to, in the order
// CloseReservation tries them, or nil if none does.
func transitions(to inventory.Status) []transition {
	switch to {
	case inventory.StatusCommitted: // sold: the units leave the shop
		return []transition{{from: inventory.StatusPending, unreserve: true}}
	case inventory.StatusExpired:
		return []transition{{from: inventory.StatusPending, unreserve: true, restock: true}}
	case inventory.StatusReleased:
		return []transition{
			{from: inventory.StatusPending, unreserve: true, restock: true},
			// A sale undone: reserved already shrank at the commit.
			{from: inventory.StatusCommitted, restock: true},
		}
	}
	return nil
}

// CloseReservation implements inventory.Reservations.
func (s *Store) CloseReservation(ctx context.Context, id string, to inventory.Status, at time.Time) (inventory.Reservation, bool, error) {
	moves := transitions(to)
	if moves == nil {
		return inventory.Reservation{}, false, fmt.Errorf("close reservation %s: cannot close to status %q", id, to)
	}
	var (
		r      inventory.Reservation
		closed bool
		move   transition
	)
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Each UPDATE changes the row only while it has the status its move
		// starts from. On Postgres (READ COMMITTED), an UPDATE that meets a
		// concurrent change of the row waits for it to commit and then finds
		// the status changed; the next UPDATE, a new statement, sees the new
		// status. So a release racing a commit either wins from PENDING or
		// undoes the commit.
		for _, move = range moves {
			res := tx.Exec("UPDATE reservations SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
				string(to), dbTime(at), id, string(move.from))
			if res.Error != nil {
				return fmt.Errorf("update reservation status: %w", res.Error)
			}
			if closed = res.RowsAffected == 1; closed {
				break
			}
		}
		var err error
		if r, err = readReservation(tx, "id", id); err != nil || !closed {
			return err
		}
		for _, l := range r.Lines {
			var unreserved, restocked int64
			if move.unreserve {
				unreserved = l.Quantity
			}
			if move.restock {
				restocked = l.Quantity
			}
			res := tx.Exec("UPDATE stock SET reserved = reserved - ?, available = available + ? WHERE sku = ? AND reserved >= ?",
				unreserved, restocked, l.SKU, unreserved)
			if res.Error != nil {
				return fmt.Errorf("update stock of %s: %w", l.SKU, res.Error)
			}
			if res.RowsAffected != 1 {
				return fmt.Errorf("update stock of %s: no stock row, or fewer units reserved than reservation %s holds", l.SKU, id)
			}
		}
		return nil
	})
	if err != nil {
		return inventory.Reservation{}, false, err
	}
	return r, closed, nil
}

// OverdueReservations implements inventory.Reservations.
func (s *Store) OverdueReservations(ctx context.Context, now time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Raw(
		"SELECT id FROM reservations WHERE status = ? AND expires_at <= ? ORDER BY expires_at, id LIMIT ?",
		string(inventory.StatusPending), dbTime(now), limit).Scan(&ids).Error
	if err != nil {
		return nil, fmt.Errorf("select overdue reservations: %w", err)
	}
	return ids, nil
}

// dbTime is t as both engines store it: UTC, to the microsecond. SQLite
// compares times as text, which orders correctly only in one time zone.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }
