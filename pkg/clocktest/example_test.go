package clocktest_test

import (
	"fmt"
	"time"

	"github.com/microshop/microshop/pkg/clocktest"
)

// expired is code under test: it reads the time through now.
func expired(now func() time.Time, deadline time.Time) bool { return !now().Before(deadline) }

func Example() {
	clock := clocktest.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	deadline := clock.Now().Add(15 * time.Minute)

	fmt.Println(expired(clock.Now, deadline))
	clock.Advance(15 * time.Minute)
	fmt.Println(expired(clock.Now, deadline), clock.Now().Format(time.Kitchen))
	// Output:
	// false
	// true 12:15PM
}
