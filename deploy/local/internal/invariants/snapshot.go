package invariants

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/segmentio/kafka-go"

	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
	"github.com/microshop/microshop/services/psp/simulator"
)

// Snapshot is everything the checker judges, as plain data: the three
// services' databases, the PSP's records and the dead-letter topics, read
// once the stack was quiet and its replicas stopped. Check reads nothing
// else, so the mutation tests, which read a snapshot of databases and a PSP
// they planted violations in, exercise exactly the code a run uses.
type Snapshot struct {
	orders           []orderRow
	orderLines       []orderLine
	sagas            []sagaRow
	stock            map[string]stockRow // by SKU
	reservations     []reservationRow
	reservationLines []reservationLine
	payments         []paymentRow
	refunds          []refundRow
	barriers         []barrierRow
	unsent           map[string]int64 // service → outbox rows not yet sent
	deadLetters      map[string]int64 // dead-letter topic → messages in it
	charges          []simulator.Charge
	pspRefunds       []simulator.Refund
}

type orderRow struct {
	id, customer, key, status, currency, reason string
	total                                       int64
}

type orderLine struct {
	orderID, sku        string
	quantity, unitPrice int64
}

type sagaRow struct{ id, status string }

type stockRow struct{ available, reserved int64 }

type reservationRow struct{ id, orderID, status string }

type reservationLine struct {
	reservationID, sku string
	quantity           int64
}

type paymentRow struct {
	id, orderID, key, status, pspReference string
	amount, refunded                       int64
}

type refundRow struct {
	id, paymentID, key, status, pspReference string
	amount                                   int64
}

// barrierRow is a row of a participant's saga barrier.
type barrierRow struct {
	service, sagaID, step, op, insertedBy string
}

// Databases are the three services' databases.
type Databases struct {
	Order, Inventory, Payment *sql.DB
}

// each calls f with each service's name and database.
func (d Databases) each(f func(service string, db *sql.DB) error) error {
	for _, s := range []struct {
		name string
		db   *sql.DB
	}{{"order", d.Order}, {"inventory", d.Inventory}, {"payment", d.Payment}} {
		if err := f(s.name, s.db); err != nil {
			return err
		}
	}
	return nil
}

// readDatabases reads the databases' part of the snapshot into s.
func readDatabases(ctx context.Context, d Databases, s *Snapshot) error {
	s.stock = map[string]stockRow{}
	s.unsent = map[string]int64{}
	reads := []struct {
		db   *sql.DB
		sql  string
		scan func(scan func(...any) error) error
	}{
		{d.Order, "SELECT id, customer_id, idempotency_key, status, total_minor, currency, cancel_reason FROM orders",
			func(scan func(...any) error) error {
				var o orderRow
				err := scan(&o.id, &o.customer, &o.key, &o.status, &o.total, &o.currency, &o.reason)
				s.orders = append(s.orders, o)
				return err
			}},
		{d.Order, "SELECT order_id, sku, quantity, unit_price_minor FROM order_lines",
			func(scan func(...any) error) error {
				var l orderLine
				err := scan(&l.orderID, &l.sku, &l.quantity, &l.unitPrice)
				s.orderLines = append(s.orderLines, l)
				return err
			}},
		{d.Order, "SELECT id, status FROM saga_instances",
			func(scan func(...any) error) error {
				var g sagaRow
				err := scan(&g.id, &g.status)
				s.sagas = append(s.sagas, g)
				return err
			}},
		{d.Inventory, "SELECT sku, available, reserved FROM stock",
			func(scan func(...any) error) error {
				var sku string
				var r stockRow
				err := scan(&sku, &r.available, &r.reserved)
				s.stock[sku] = r
				return err
			}},
		{d.Inventory, "SELECT id, order_id, status FROM reservations",
			func(scan func(...any) error) error {
				var r reservationRow
				err := scan(&r.id, &r.orderID, &r.status)
				s.reservations = append(s.reservations, r)
				return err
			}},
		{d.Inventory, "SELECT reservation_id, sku, quantity FROM reservation_lines",
			func(scan func(...any) error) error {
				var l reservationLine
				err := scan(&l.reservationID, &l.sku, &l.quantity)
				s.reservationLines = append(s.reservationLines, l)
				return err
			}},
		{d.Payment, "SELECT id, order_id, idempotency_key, status, amount_minor, refunded_minor, psp_reference FROM payments",
			func(scan func(...any) error) error {
				var p paymentRow
				err := scan(&p.id, &p.orderID, &p.key, &p.status, &p.amount, &p.refunded, &p.pspReference)
				s.payments = append(s.payments, p)
				return err
			}},
		{d.Payment, "SELECT id, payment_id, idempotency_key, status, amount_minor, psp_reference FROM refunds",
			func(scan func(...any) error) error {
				var r refundRow
				err := scan(&r.id, &r.paymentID, &r.key, &r.status, &r.amount, &r.pspReference)
				s.refunds = append(s.refunds, r)
				return err
			}},
	}
	for _, service := range []struct {
		name string
		db   *sql.DB
	}{{"inventory", d.Inventory}, {"payment", d.Payment}} {
		reads = append(reads, struct {
			db   *sql.DB
			sql  string
			scan func(scan func(...any) error) error
		}{service.db, "SELECT saga_id, step, op, inserted_by FROM saga_barrier", func(scan func(...any) error) error {
			b := barrierRow{service: service.name}
			err := scan(&b.sagaID, &b.step, &b.op, &b.insertedBy)
			s.barriers = append(s.barriers, b)
			return err
		}})
	}
	for _, r := range reads {
		if err := query(ctx, r.db, r.sql, r.scan); err != nil {
			return err
		}
	}
	return d.each(func(service string, db *sql.DB) error {
		n, err := unsentOutbox(ctx, db)
		s.unsent[service] = n
		return err
	})
}

// query runs sql and calls scan for each row with the row's Scan.
func query(ctx context.Context, db *sql.DB, sql string, scan func(scan func(...any) error) error) error {
	rows, err := db.QueryContext(ctx, sql)
	if err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows.Scan); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", sql, err)
	}
	return nil
}

// count runs a SELECT count(*) query.
func count(ctx context.Context, db *sql.DB, sql string) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, sql).Scan(&n); err != nil {
		return 0, fmt.Errorf("%s: %w", sql, err)
	}
	return n, nil
}

// unsentOutbox counts the outbox rows the relay has not sent yet.
func unsentOutbox(ctx context.Context, db *sql.DB) (int64, error) {
	return count(ctx, db, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
}

// readPSP reads every charge and refund the PSP simulator recorded, through
// its admin listings (GET /v1/admin/charges, /v1/admin/refunds).
func readPSP(ctx context.Context, base string, s *Snapshot) error {
	get := func(path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", path, resp.Status)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var charges struct{ Items []simulator.Charge }
	var refunds struct{ Items []simulator.Refund }
	if err := get("/v1/admin/charges", &charges); err != nil {
		return err
	}
	if err := get("/v1/admin/refunds", &refunds); err != nil {
		return err
	}
	s.charges, s.pspRefunds = charges.Items, refunds.Items
	return nil
}

// consumerGroups maps each service's consumer group (the GroupID in its
// cmd's main) to the topic it reads.
var consumerGroups = map[string]string{
	"inventory": checkoutv1.TopicInventoryCommands,
	"payment":   checkoutv1.TopicPaymentCommands,
	"order":     checkoutv1.TopicReplies,
}

// endOffsets returns the offset after the last message of each partition
// of topic.
func endOffsets(ctx context.Context, c *kafka.Client, topic string) (map[int]int64, error) {
	meta, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return nil, fmt.Errorf("metadata of %s: %v", topic, meta.Topics)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	resp, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("end offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
	}
	if len(ends) != len(reqs) {
		return nil, fmt.Errorf("end offsets of %s: %d of %d partitions answered", topic, len(ends), len(reqs))
	}
	return ends, nil
}

// consumerLag returns, per consumer group, how many messages of its topic
// it has not committed: end offsets minus committed offsets, a partition
// without a commit counting from 0 (the consumers start at the first
// offset).
func consumerLag(ctx context.Context, c *kafka.Client) (map[string]int64, error) {
	lag := map[string]int64{}
	for group, topic := range consumerGroups {
		ends, err := endOffsets(ctx, c, topic)
		if err != nil {
			return nil, err
		}
		partitions := make([]int, 0, len(ends))
		for p := range ends {
			partitions = append(partitions, p)
		}
		resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: partitions}})
		if err != nil {
			return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
		}
		switch {
		case errors.Is(resp.Error, kafka.GroupIdNotFound):
			// No member ever committed: everything is lag.
		case resp.Error != nil:
			return nil, fmt.Errorf("committed offsets of %s: %w", group, resp.Error)
		}
		committed := map[int]int64{}
		for _, p := range resp.Topics[topic] {
			if p.Error != nil {
				return nil, fmt.Errorf("committed offset of %s on %s/%d: %w", group, topic, p.Partition, p.Error)
			}
			committed[p.Partition] = max(p.CommittedOffset, 0)
		}
		for p, end := range ends {
			lag[group] += end - committed[p]
		}
	}
	return lag, nil
}

// readDeadLetters counts the messages in the checkout's dead-letter topics:
// commands and replies a consumer gave up on, which the saga never saw
// handled.
func readDeadLetters(ctx context.Context, c *kafka.Client, s *Snapshot) error {
	s.deadLetters = map[string]int64{}
	for _, topic := range consumerGroups {
		dlq := checkoutv1.DLQTopic(topic)
		ends, err := endOffsets(ctx, c, dlq)
		if err != nil {
			return err
		}
		for _, end := range ends {
			s.deadLetters[dlq] += end
		}
	}
	return nil
}
