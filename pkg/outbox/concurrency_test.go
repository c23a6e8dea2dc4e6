package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/poll"
)

// TestRelaysUnderLoad adds thousands of messages on 50 keys from many
// goroutines while relays run: several on Postgres, one on SQLite (see the
// package doc). With crashes between publish and mark, duplicates appear
// and nothing is lost or reordered; without, there are no duplicates even
// with several relays, which is what FOR UPDATE SKIP LOCKED is for.
func TestRelaysUnderLoad(t *testing.T) {
	const (
		keys    = 50
		perKey  = 60
		writers = 10
		// rollbackEvery makes every so many transactions of a writer roll
		// back a message that must then never be published.
		rollbackEvery = 7
	)
	relays := map[string]int{database.SQLite: 1, database.Postgres: 3}
	tests := []struct {
		name string
		// crashEvery makes every relay die after every so many
		// WriteMessages calls, before marking the messages sent; 0 never.
		crashEvery int
		wantDups   bool
	}{
		{"no crashes", 0, false},
		// A round makes up to BatchSize (20) WriteMessages calls, one
		// per wave; crashing less often lets every life of a relay finish
		// at least one round.
		{"crashes between publish and mark", 25, true},
	}
	for dialect, newDB := range backends(t) {
		for _, tt := range tests {
			t.Run(dialect+"/"+tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				defer cancel()
				db, addr := newDB(t), startBroker(ctx, t, topic)
				msgs := keyed(topic, keyNames(keys), perKey)

				relayCtx, stopRelays := context.WithCancel(ctx)
				var relaying sync.WaitGroup
				pubs := make([]*crashingPublisher, relays[dialect])
				for i := range pubs {
					pubs[i] = &crashingPublisher{next: newWriter(t, addr), every: tt.crashEvery}
					relaying.Go(func() { runRestarting(relayCtx, db, pubs[i]) })
				}

				var writing sync.WaitGroup
				errs := make(chan error, writers)
				for w := range writers {
					writing.Go(func() { errs <- write(ctx, db, msgs, w, writers, rollbackEvery) })
				}
				writing.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("writer: %v", err)
					}
				}
				poll.Until(ctx, t, "every message sent", func() bool { return count(t, db, "sent_at IS NULL") == 0 })
				stopRelays()
				relaying.Wait()

				// Every message at least once, first publications in add
				// order per key, rolled-back ones never (they would show in
				// the order).
				order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
				if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
					t.Errorf("per-key order of first publications (-want +got):\n%s", diff)
				}
				if got := dups > 0; got != tt.wantDups {
					t.Errorf("%d duplicates; want some: %t", dups, tt.wantDups)
				}
				if n := count(t, db, "sent_at IS NOT NULL"); n != int64(len(msgs)) {
					t.Errorf("%d rows sent, want %d", n, len(msgs))
				}
				var crashes, working int
				for _, p := range pubs {
					crashes += p.crashes
					if p.acked > 0 {
						working++
					}
				}
				if working != len(pubs) {
					t.Errorf("%d of %d relays published, want all: the test must make them compete", working, len(pubs))
				}
				t.Logf("%d messages, %d duplicates, %d crashes", len(msgs), dups, crashes)
			})
		}
	}
}

// runRestarting runs a relay over db publishing through pub until ctx ends;
// each time pub crashes it, it starts a new one, as a supervisor restarts a
// process.
func runRestarting(ctx context.Context, db *database.DB, pub *crashingPublisher) {
	for ctx.Err() == nil {
		life, crash := context.WithCancel(ctx)
		pub.setCrash(crash)
		// Without a registry NewRelay cannot fail.
		relay, _ := outbox.NewRelay(db, pub, outbox.RelayOptions{BatchSize: 20, PollInterval: 5 * time.Millisecond}, discard(), nil)
		relay.Run(life)
		crash()
	}
}

// write adds, one transaction each and in order, the messages of msgs whose
// key is the w-th of every n keys, as a service handling those orders
// would. Every rollbackEvery-th transaction it first adds a message in a
// transaction that rolls back.
func write(ctx context.Context, db *database.DB, msgs []outbox.Message, w, n, rollbackEvery int) error {
	keys := make(map[string]int)
	for i, m := range msgs {
		if _, ok := keys[m.Key]; !ok {
			keys[m.Key] = len(keys)
		}
		if keys[m.Key]%n != w {
			continue
		}
		if i%rollbackEvery == 0 {
			ghost := outbox.Message{ID: "ghost-" + m.ID, Topic: m.Topic, Key: m.Key}
			err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				if err := outbox.Add(ctx, tx, ghost); err != nil {
					return err
				}
				return errRolledBack
			})
			if !errors.Is(err, errRolledBack) {
				return fmt.Errorf("rolled-back transaction: %w", err)
			}
		}
		err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return outbox.Add(ctx, tx, m) })
		if err != nil {
			return fmt.Errorf("add %s: %w", m.ID, err)
		}
	}
	return nil
}

// TestRelaysDrainABacklog lets relays (several on Postgres, one on SQLite)
// drain a backlog of a few deep keys, round by round. A round takes many
// messages of a key, so the backlog drains in fewer rounds than a key has
// messages, which one message per key and round could not; and however the
// relays share the keys, each key's messages are published once each, in
// order.
func TestRelaysDrainABacklog(t *testing.T) {
	const (
		keys   = 12
		perKey = 60
	)
	relays := map[string]int{database.SQLite: 1, database.Postgres: 3}
	for dialect, newDB := range backends(t) {
		t.Run(dialect, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			db, addr := newDB(t), startBroker(ctx, t, topic)
			msgs := keyed(topic, keyNames(keys), perKey)
			add(ctx, t, db, msgs...)

			var relaying sync.WaitGroup
			rounds := make([]int, relays[dialect]) // rounds that relayed something, per relay
			errs := make([]error, len(rounds))
			for i := range rounds {
				relay, _ := newRelay(t, db, newWriter(t, addr), outbox.RelayOptions{BatchSize: 50})
				relaying.Go(func() {
					for ctx.Err() == nil && count(t, db, "sent_at IS NULL") > 0 {
						n, err := relay.RelayOnce(ctx)
						if err != nil {
							errs[i] = err
							return
						}
						if n > 0 {
							rounds[i]++
						}
					}
				})
			}
			relaying.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatalf("RelayOnce: %v", err)
			}

			order, dups := firstPublications(t, readAll(ctx, t, addr, topic))
			if diff := cmp.Diff(wantOrder(msgs), order); diff != "" {
				t.Errorf("per-key order (-want +got):\n%s", diff)
			}
			if dups != 0 {
				t.Errorf("%d duplicates, want none without a crash", dups)
			}
			total := 0
			for _, n := range rounds {
				total += n
			}
			if total >= perKey {
				t.Errorf("%d rounds relayed something, want fewer than %d (the messages of one key)", total, perKey)
			}
			t.Logf("%d messages in %d rounds, per relay %v", len(msgs), total, rounds)
		})
	}
}
