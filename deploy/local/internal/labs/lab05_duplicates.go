package labs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/telemetry/jaegerquery"
	checkoutv1 "github.com/microshop/microshop/proto/microshop/checkout/v1"
)

// Redeliver delivers the saga commands of order orderID again: it reads
// every command with the order's key from the participants' topics and
// produces each once more, unchanged — key, value and headers (message id,
// trace context) — on the partition the key maps to, as a broker does when
// a consumer died after handling a message and before committing it. It
// returns how many it sent. It is lab 5's tool (make lab-redeliver).
func Redeliver(ctx context.Context, s Stack, orderID string) (int, error) {
	if s.Broker == "" {
		return 0, errors.New("no broker address: is make run-full running?")
	}
	if orderID == "" {
		return 0, errors.New("which order? make lab-redeliver ORDER=<order id>")
	}
	var sent int
	for _, topic := range []string{checkoutv1.TopicInventoryCommands, checkoutv1.TopicPaymentCommands} {
		msgs, err := messagesOf(ctx, s.Broker, topic, orderID)
		if err != nil {
			return sent, err
		}
		if len(msgs) == 0 {
			continue
		}
		w := &kafka.Writer{Addr: kafka.TCP(s.Broker), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll}
		again := make([]kafka.Message, len(msgs))
		for i, m := range msgs {
			again[i] = kafka.Message{Key: m.Key, Value: m.Value, Headers: m.Headers}
		}
		err = w.WriteMessages(ctx, again...)
		if closeErr := w.Close(); err == nil {
			err = closeErr
		}
		if err != nil {
			return sent, fmt.Errorf("deliver again to %s: %w", topic, err)
		}
		sent += len(again)
	}
	if sent == 0 {
		return 0, fmt.Errorf("no saga command of order %q is on the broker: copy an order id from the 202 answer or GET /api/v1/orders", orderID)
	}
	return sent, nil
}

// messagesOf reads the messages keyed key in topic: all of them are on the
// one partition the key hashes to (the outbox relay's balancer, kafka.Hash).
func messagesOf(ctx context.Context, broker, topic, key string) ([]kafka.Message, error) {
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: requestTimeout}
	meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil || len(meta.Topics[0].Partitions) == 0 {
		return nil, fmt.Errorf("metadata of %s: %v", topic, meta.Topics)
	}
	var partitions []int
	for _, p := range meta.Topics[0].Partitions {
		partitions = append(partitions, p.ID)
	}
	slices.Sort(partitions)
	partition := (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(key)}, partitions...)
	offsets, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		topic: {kafka.FirstOffsetOf(partition), kafka.LastOffsetOf(partition)}}})
	if err != nil {
		return nil, fmt.Errorf("offsets of %s/%d: %w", topic, partition, err)
	}
	var first, end int64
	for _, p := range offsets.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("offsets of %s/%d: %w", topic, partition, p.Error)
		}
		first, end = p.FirstOffset, p.LastOffset
	}
	if end <= first {
		return nil, nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: partition, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(first); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var found []kafka.Message
	for {
		m, err := r.ReadMessage(ctx) // a reader of a partition, not of a group: nothing is committed
		if err != nil {
			return nil, fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		if string(m.Key) == key {
			found = append(found, m)
		}
		if m.Offset >= end-1 {
			return found, nil
		}
	}
}

// redelivery is a command a participant handled twice: the barrier's
// duplicate outcome on a second delivery of one message.
type redelivery struct {
	service, orderID, step, op, traceID string
	firstOffset, againOffset            string
}

// checkDuplicates is lab 5: duplicate deliveries meet the barrier. It wants
// Jaeger to show, at inventory and at payment, one message delivered twice —
// two consumer spans of the same message id at different offsets, the later
// with saga.barrier=duplicate — and for those orders no effect applied
// twice: one reservation, at most one payment and one refund, at most one
// charge at the payment provider under the order's key.
func checkDuplicates(ctx context.Context, s Stack) (Verdict, error) {
	var v Verdict
	var all []redelivery
	for _, service := range []string{"inventory", "payment"} {
		traces, err := findTraces(ctx, s.Jaeger, service, "", map[string]string{"saga.barrier": "duplicate"}, 24*time.Hour, 50)
		if err != nil {
			return v, err
		}
		found := redeliveries(traces, service)
		if len(found) == 0 {
			v.miss("%s has handled no message delivered twice yet (a second delivery with saga.barrier=duplicate in its trace): "+
				"pick a CONFIRMED order and run make lab-redeliver ORDER=<its id> (step 2 of labs/05-duplicates/README.md)", service)
			continue
		}
		r := found[0]
		v.see("%s got %d command(s) a second time and its barrier answered duplicate; e.g. %s %s of order %s, offsets %s then %s (trace %s)",
			service, len(found), r.step, r.op, r.orderID, r.firstOffset, r.againOffset, r.traceID)
		all = append(all, found...)
	}
	if len(all) == 0 {
		return v, nil
	}

	d, closeDBs, err := openDatabases(ctx, s)
	if err != nil {
		return v, err
	}
	defer closeDBs()
	var charges struct {
		Items []struct {
			ID             string `json:"id"`
			IdempotencyKey string `json:"idempotency_key"`
		} `json:"items"`
	}
	if err := getJSON(ctx, s.PSP+"/v1/admin/charges", &charges); err != nil {
		return v, fmt.Errorf("read the payment provider's charges: %w", err)
	}
	orders := map[string]bool{}
	for _, r := range all {
		orders[r.orderID] = true
	}
	for _, id := range slices.Sorted(maps.Keys(orders)) {
		var reservations, payments, refunds int
		for _, c := range []struct {
			n     *int
			db    *sql.DB
			query string
		}{
			{&reservations, d.Inventory, "SELECT count(*) FROM reservations WHERE order_id = $1"},
			{&payments, d.Payment, "SELECT count(*) FROM payments WHERE order_id = $1"},
			{&refunds, d.Payment, "SELECT count(*) FROM refunds r JOIN payments p ON p.id = r.payment_id WHERE p.order_id = $1"},
		} {
			if err := c.db.QueryRowContext(ctx, c.query, id).Scan(c.n); err != nil {
				return v, fmt.Errorf("count the effects of order %s: %w", id, err)
			}
		}
		pspCharges := 0
		for _, ch := range charges.Items {
			if ch.IdempotencyKey == checkoutv1.ChargeKey(id) {
				pspCharges++
			}
		}
		if reservations > 1 || payments > 1 || refunds > 1 || pspCharges > 1 {
			v.miss("order %s has an effect applied twice (I4): %d reservations, %d payments, %d refunds, %d charges at the payment provider — the barrier let a duplicate through",
				id, reservations, payments, refunds, pspCharges)
			continue
		}
		v.see("order %s, delivered twice, has every effect once: %d reservation, %d payment, %d refund, %d charge at the payment provider",
			id, reservations, payments, refunds, pspCharges)
	}
	return v, nil
}

// redeliveries finds, in traces, the consumer spans of service whose
// message was delivered before at another offset and whose barrier said
// duplicate. A retry of one delivery (one offset) is not a redelivery.
func redeliveries(traces []jaegerquery.Trace, service string) []redelivery {
	var found []redelivery
	for _, tr := range traces {
		for _, s := range tr {
			if s.Service != service || s.Kind != "consumer" || s.Tag("saga.barrier") != "duplicate" {
				continue
			}
			id, offset := s.Tag("messaging.message.id"), s.Tag("messaging.kafka.offset")
			if id == "" {
				continue
			}
			for _, first := range tr {
				if first.SpanID != s.SpanID && first.Service == service && first.Kind == "consumer" &&
					first.Tag("messaging.message.id") == id && first.Tag("messaging.kafka.offset") != offset {
					found = append(found, redelivery{service: service, orderID: s.Tag("saga.id"), step: s.Tag("saga.step"),
						op: s.Tag("saga.operation"), traceID: s.TraceID, firstOffset: first.Tag("messaging.kafka.offset"), againOffset: offset})
					break
				}
			}
		}
	}
	slices.SortFunc(found, func(a, b redelivery) int { return strings.Compare(a.orderID+a.step+a.op, b.orderID+b.step+b.op) })
	return found
}
