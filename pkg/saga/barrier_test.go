package saga_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/saga"
)

// Short names of the operations in the tables below.
const (
	A = saga.OpAction
	C = saga.OpCompensate
)

func TestBarrier(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			db := openDB(t, b.newURL(t)) // every subtest uses its own saga ids
			t.Run("sequences", func(t *testing.T) { testBarrierSequences(t, db) })
			t.Run("concurrent duplicates proceed once", func(t *testing.T) { testBarrierConcurrentDuplicates(t, db) })
			t.Run("concurrent action and compensation", func(t *testing.T) { testBarrierConcurrentMix(t, db) })
			t.Run("business effect at most once in every order", func(t *testing.T) { testBarrierEffects(t, db) })
			t.Run("a rolled-back delivery leaves no trace", func(t *testing.T) { testBarrierRollback(t, db) })
			t.Run("invalid input", func(t *testing.T) { testBarrierInvalid(t, db) })
			t.Run("compensated", func(t *testing.T) { testCompensated(t, db) })
		})
	}
}

// pass runs Barrier in a transaction of its own and commits.
func pass(t *testing.T, db *database.DB, sagaID, step, op string) saga.Outcome {
	t.Helper()
	var out saga.Outcome
	err := db.Transaction(func(tx *gorm.DB) error {
		var err error
		out, err = saga.Barrier(t.Context(), tx, sagaID, step, op)
		return err
	})
	if err != nil {
		t.Fatalf("Barrier(%s, %s, %s): %v", sagaID, step, op, err)
	}
	return out
}

func testBarrierSequences(t *testing.T, db *database.DB) {
	tests := []struct {
		name string
		ops  []string
		want []saga.Outcome
	}{
		{"normal action", []string{A}, []saga.Outcome{saga.Proceed}},
		{"duplicate action", []string{A, A}, []saga.Outcome{saga.Proceed, saga.Duplicate}},
		{"compensation after action", []string{A, C}, []saga.Outcome{saga.Proceed, saga.Proceed}},
		{"duplicate compensation", []string{A, C, C}, []saga.Outcome{saga.Proceed, saga.Proceed, saga.Duplicate}},
		{"duplicate action after its compensation", []string{A, C, A}, []saga.Outcome{saga.Proceed, saga.Proceed, saga.Duplicate}},
		{"null compensation then the late action", []string{C, A}, []saga.Outcome{saga.NullCompensation, saga.Refused}},
		{"disorder: compensation twice, then the late action", []string{C, C, A}, []saga.Outcome{saga.NullCompensation, saga.Duplicate, saga.Refused}},
		{"late action delivered twice", []string{C, A, A}, []saga.Outcome{saga.NullCompensation, saga.Refused, saga.Refused}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sagaID := fmt.Sprintf("sequence-%d", i)
			var got []saga.Outcome
			for _, op := range tt.ops {
				got = append(got, pass(t, db, sagaID, "reserve", op))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("outcomes of %v (-want +got):\n%s", tt.ops, diff)
			}
			// Another step of the same saga is unaffected.
			if got := pass(t, db, sagaID, "charge", A); got != saga.Proceed {
				t.Errorf("action of another step = %v, want proceed", got)
			}
		})
	}
}

// deliverConcurrently passes the barrier for each op at once from its own
// goroutine and transaction, and returns the outcomes by op.
func deliverConcurrently(t *testing.T, db *database.DB, sagaID string, ops []string) map[string][]saga.Outcome {
	t.Helper()
	var (
		mu  sync.Mutex
		got = map[string][]saga.Outcome{}
		wg  sync.WaitGroup
	)
	for _, op := range ops {
		wg.Go(func() {
			err := db.Transaction(func(tx *gorm.DB) error {
				out, err := saga.Barrier(context.Background(), tx, sagaID, "reserve", op)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				got[op] = append(got[op], out)
				return nil
			})
			if err != nil {
				t.Errorf("deliver %s: %v", op, err)
			}
		})
	}
	wg.Wait()
	for _, outs := range got {
		slices.Sort(outs)
	}
	return got
}

func testBarrierConcurrentDuplicates(t *testing.T, db *database.DB) {
	const n = 24
	for _, op := range []string{A, C} {
		t.Run(op, func(t *testing.T) {
			sagaID := "concurrent-" + op
			got := deliverConcurrently(t, db, sagaID, slices.Repeat([]string{op}, n))
			first := saga.Proceed
			if op == C {
				first = saga.NullCompensation // no action ever came
			}
			want := append([]saga.Outcome{first}, slices.Repeat([]saga.Outcome{saga.Duplicate}, n-1)...)
			slices.Sort(want)
			if diff := cmp.Diff(want, got[op]); diff != "" {
				t.Errorf("outcomes (-want +got):\n%s", diff)
			}
		})
	}
}

// testBarrierConcurrentMix delivers many copies of an action and of its
// compensation at once. Whichever commits first decides: either the action
// ran once and was undone once, or it never ran and never will.
func testBarrierConcurrentMix(t *testing.T, db *database.DB) {
	const n = 12
	sorted := func(first saga.Outcome, rest saga.Outcome) []saga.Outcome {
		o := append([]saga.Outcome{first}, slices.Repeat([]saga.Outcome{rest}, n-1)...)
		slices.Sort(o)
		return o
	}
	actionFirst := map[string][]saga.Outcome{A: sorted(saga.Proceed, saga.Duplicate), C: sorted(saga.Proceed, saga.Duplicate)}
	compensationFirst := map[string][]saga.Outcome{A: sorted(saga.Refused, saga.Refused), C: sorted(saga.NullCompensation, saga.Duplicate)}
	for round := range 4 {
		sagaID := fmt.Sprintf("mix-%d", round)
		ops := slices.Concat(slices.Repeat([]string{A}, n), slices.Repeat([]string{C}, n))
		got := deliverConcurrently(t, db, sagaID, ops)
		if !cmp.Equal(got, actionFirst) && !cmp.Equal(got, compensationFirst) {
			t.Errorf("round %d: outcomes %v, want either %v (action first) or %v (compensation first)", round, got, actionFirst, compensationFirst)
		}
	}
}

// testBarrierEffects applies a business effect (a counter) behind the
// barrier for every order of delivery of an action and its compensation,
// with duplicates: the action is applied at most once, undone at most once,
// and undone exactly when it was applied — if it came first.
func testBarrierEffects(t *testing.T, db *database.DB) {
	var orders [][]string
	for _, multiset := range [][]string{{A, C}, {A, A, C}, {A, C, C}, {A, A, C, C}, {A, A, A, C}, {A, C, C, C}} {
		orders = append(orders, permutations(multiset)...)
	}
	for i, deliveries := range orders {
		t.Run(strings.Join(deliveries, ","), func(t *testing.T) {
			sagaID := fmt.Sprintf("effect-%d", i)
			if err := db.Exec("INSERT INTO test_effects (saga_id, applied, undone) VALUES (?, 0, 0)", sagaID).Error; err != nil {
				t.Fatal(err)
			}
			for _, op := range deliveries {
				err := db.Transaction(func(tx *gorm.DB) error {
					out, err := saga.Barrier(t.Context(), tx, sagaID, "reserve", op)
					if err != nil || out != saga.Proceed {
						return err
					}
					column := map[string]string{A: "applied", C: "undone"}[op]
					return tx.Exec("UPDATE test_effects SET "+column+" = "+column+" + 1 WHERE saga_id = ?", sagaID).Error
				})
				if err != nil {
					t.Fatalf("deliver %s: %v", op, err)
				}
			}
			var got struct{ Applied, Undone int }
			if err := db.Raw("SELECT applied, undone FROM test_effects WHERE saga_id = ?", sagaID).Scan(&got).Error; err != nil {
				t.Fatal(err)
			}
			want := struct{ Applied, Undone int }{}
			if deliveries[0] == A {
				want.Applied, want.Undone = 1, 1
			}
			if got != want {
				t.Errorf("applied, undone = %d, %d; want %d, %d", got.Applied, got.Undone, want.Applied, want.Undone)
			}
		})
	}
}

// permutations returns the distinct orderings of ops.
func permutations(ops []string) [][]string {
	if len(ops) <= 1 {
		return [][]string{slices.Clone(ops)}
	}
	var out [][]string
	seen := map[string]bool{}
	for i, first := range ops {
		if seen[first] {
			continue
		}
		seen[first] = true
		rest := slices.Concat(ops[:i:i], ops[i+1:])
		for _, p := range permutations(rest) {
			out = append(out, append([]string{first}, p...))
		}
	}
	return out
}

// testBarrierRollback: a delivery whose business transaction fails takes its
// barrier row with it, so the redelivery proceeds.
func testBarrierRollback(t *testing.T, db *database.DB) {
	errBusiness := errors.New("database hiccup")
	err := db.Transaction(func(tx *gorm.DB) error {
		out, err := saga.Barrier(t.Context(), tx, "rollback", "reserve", A)
		if err != nil {
			return err
		}
		if out != saga.Proceed {
			t.Errorf("first delivery = %v, want proceed", out)
		}
		return errBusiness
	})
	if !errors.Is(err, errBusiness) {
		t.Fatalf("transaction = %v, want the business error", err)
	}
	if got := pass(t, db, "rollback", "reserve", A); got != saga.Proceed {
		t.Errorf("redelivery after the rollback = %v, want proceed", got)
	}
}

func testBarrierInvalid(t *testing.T, db *database.DB) {
	tests := []struct{ name, sagaID, step, op string }{
		{"no saga id", "", "reserve", A},
		{"no step", "s", "", A},
		{"unknown op", "s", "reserve", "undo"},
		{"NUL in saga id", "s\x00", "reserve", A},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := db.Transaction(func(tx *gorm.DB) error {
				_, err := saga.Barrier(t.Context(), tx, tt.sagaID, tt.step, tt.op)
				return err
			})
			if !errors.Is(err, saga.ErrInvalidCorrelation) {
				t.Errorf("Barrier = %v, want ErrInvalidCorrelation", err)
			}
		})
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		o    saga.Outcome
		want string
	}{
		{saga.Proceed, "proceed"},
		{saga.Duplicate, "duplicate"},
		{saga.NullCompensation, "null compensation"},
		{saga.Refused, "refused"},
		{0, "Outcome(0)"},
	}
	for _, tt := range tests {
		if got := tt.o.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(tt.o), got, tt.want)
		}
	}
}

func testCompensated(t *testing.T, db *database.DB) {
	ctx := context.Background()
	check := func(sagaID string, want bool) {
		t.Helper()
		got, err := saga.Compensated(ctx, db.DB, sagaID, "charge")
		if err != nil || got != want {
			t.Errorf("Compensated(%s) = %v, %v; want %v", sagaID, got, err, want)
		}
	}
	check("comp-none", false)
	pass(t, db, "comp-action", "charge", A)
	check("comp-action", false)
	pass(t, db, "comp-both", "charge", A)
	pass(t, db, "comp-both", "charge", C)
	check("comp-both", true)
	pass(t, db, "comp-null", "charge", C)
	check("comp-null", true)
	if got := pass(t, db, "comp-both", "charge", A); got != saga.Duplicate {
		t.Errorf("action redelivered after its compensation = %v, want Duplicate (hence Compensated)", got)
	}
}
