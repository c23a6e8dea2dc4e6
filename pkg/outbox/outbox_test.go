package outbox_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
)

// TestAdd is the writing half of the outbox on both engines: what Add
// stores, what it refuses, and that it is versioned apart from the service.
func TestAdd(t *testing.T) {
	valid := outbox.Message{ID: "m-1", Topic: "inventory.commands", Key: "order-1", Payload: []byte("{}")}
	tests := []struct {
		name   string
		modify func(m *outbox.Message)
	}{
		{"no ID", func(m *outbox.Message) { m.ID = "" }},
		{"no key", func(m *outbox.Message) { m.Key = "" }},
		{"no topic", func(m *outbox.Message) { m.Topic = "" }},
		{"topic with a space", func(m *outbox.Message) { m.Topic = "inventory commands" }},
		{"topic ..", func(m *outbox.Message) { m.Topic = ".." }},
		{"topic too long", func(m *outbox.Message) { m.Topic = strings.Repeat("t", 250) }},
		{"message-id header", func(m *outbox.Message) { m.Headers = map[string]string{"Message-ID": "x"} }},
		{"traceparent header", func(m *outbox.Message) {
			m.Headers = map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
		}},
		{"tracestate header", func(m *outbox.Message) { m.Headers = map[string]string{"TraceState": "shop=checkout"} }},
		{"empty header name", func(m *outbox.Message) { m.Headers = map[string]string{"": "x"} }},
		{"header not UTF-8", func(m *outbox.Message) { m.Headers = map[string]string{"tracestate": "\xff"} }},
		{"too large", func(m *outbox.Message) { m.Payload = make([]byte, outbox.MaxMessageBytes) }},
	}

	for dialect, newDB := range backends(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx := t.Context()
			t.Run("invalid messages", func(t *testing.T) {
				db := newDB(t)
				for _, tt := range tests {
					t.Run(tt.name, func(t *testing.T) {
						bad := valid
						tt.modify(&bad)
						// The valid message first: Add must check all before it writes one.
						err := db.Transaction(func(tx *gorm.DB) error { return outbox.Add(ctx, tx, valid, bad) })
						if !errors.Is(err, outbox.ErrInvalidMessage) {
							t.Errorf("Add = %v, want ErrInvalidMessage", err)
						}
						if n := count(t, db, "1 = 1"); n != 0 {
							t.Errorf("%d rows stored, want none", n)
						}
					})
				}
			})
			t.Run("largest message", func(t *testing.T) {
				db := newDB(t)
				m := valid
				// Room is kept for the largest W3C trace context: a
				// traceparent of 55 bytes, a tracestate of 512.
				traceContext := len(messaging.HeaderTraceParent) + 55 + len(messaging.HeaderTraceState) + 512
				m.Payload = make([]byte, outbox.MaxMessageBytes-len(m.ID)-len(m.Key)-len(outbox.HeaderMessageID)-traceContext)
				add(ctx, t, db, m)
			})
			t.Run("needs a transaction", func(t *testing.T) {
				db := newDB(t)
				if err := outbox.Add(ctx, db.DB, valid); !errors.Is(err, outbox.ErrNoTransaction) {
					t.Errorf("Add outside a transaction = %v, want ErrNoTransaction", err)
				}
				if n := count(t, db, "1 = 1"); n != 0 {
					t.Errorf("%d rows stored, want none", n)
				}
			})
			t.Run("duplicate ID", func(t *testing.T) {
				db := newDB(t)
				add(ctx, t, db, valid)
				err := db.Transaction(func(tx *gorm.DB) error { return outbox.Add(ctx, tx, valid) })
				if !errors.Is(err, gorm.ErrDuplicatedKey) {
					t.Errorf("Add of a stored ID = %v, want gorm.ErrDuplicatedKey", err)
				}
			})
			t.Run("rows in add order, pending", func(t *testing.T) {
				db := newDB(t)
				msgs := keyed("t", keyNames(3), 2)
				add(ctx, t, db, msgs[:4]...)
				add(ctx, t, db, msgs[4:]...)
				var ids []string
				if err := db.Raw("SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY seq").Scan(&ids).Error; err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, m := range msgs {
					want = append(want, m.ID)
				}
				if diff := cmp.Diff(want, ids); diff != "" {
					t.Errorf("pending ids by seq (-want +got):\n%s", diff)
				}
			})
			t.Run("migrations versioned apart and idempotent", func(t *testing.T) {
				db := newDB(t)
				service := fstest.MapFS{"00001_orders.sql": {Data: []byte("-- +goose Up\nCREATE TABLE orders (id TEXT PRIMARY KEY);\n")}}
				if err := database.Migrate(ctx, db, service, discard()); err != nil {
					t.Fatalf("service migrations beside the outbox: %v", err)
				}
				if err := outbox.Migrate(ctx, db, discard()); err != nil {
					t.Fatalf("second Migrate: %v", err)
				}
				var versions []int64
				err := db.Raw("SELECT version_id FROM " + outbox.VersionTable + " WHERE version_id > 0 ORDER BY id").Scan(&versions).Error
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff([]int64{1, 2}, versions); diff != "" {
					t.Errorf("outbox versions (-want +got):\n%s", diff)
				}
			})
		})
	}
}
