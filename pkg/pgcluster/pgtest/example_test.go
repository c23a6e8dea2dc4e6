package pgtest_test

import (
	"testing"

	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
)

// testStore is how a test gets PostgreSQL: one cluster for the test, a fresh
// database per subtest.
func testStore(t *testing.T) {
	cluster := pgtest.Start(t) // skips without Postgres, fails under CI=true
	for _, name := range []string{"empty", "with rows"} {
		t.Run(name, func(t *testing.T) {
			url := pgtest.NewDatabase(t, cluster)
			_ = url // open it with database.Open, migrate, test the store
		})
	}
}

// Example shows the calls a test makes (see testStore). It has no Output
// comment, so go test compiles it but does not run it: an Example gets no
// *testing.T, and pgtest needs one.
func Example() {
	_ = testStore
}
