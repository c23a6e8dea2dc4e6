package clocktest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/clocktest"
)

// TestConcurrentAdvance: Advance from many goroutines loses no step (run
// with -race to check the locking too).
func TestConcurrentAdvance(t *testing.T) {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := clocktest.New(start)
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			clock.Advance(time.Second)
			_ = clock.Now()
		})
	}
	wg.Wait()
	if got, want := clock.Now(), start.Add(50*time.Second); !got.Equal(want) {
		t.Errorf("Now() = %v, want %v", got, want)
	}
}

func TestZeroValueReadsZeroTime(t *testing.T) {
	var clock clocktest.Clock
	if got := clock.Now(); !got.IsZero() {
		t.Errorf("Now() of the zero Clock = %v, want the zero time", got)
	}
}
