package poll_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/poll"
)

// printer stands in for a test's t here: it prints what would fail the test.
type printer struct{ testing.TB }

func (printer) Helper()                           {}
func (printer) Fatalf(format string, args ...any) { fmt.Printf(format+"\n", args...) }

func ExampleUntil() {
	var t testing.TB = printer{} // in a test: the test's own t

	var stock atomic.Int64
	go stock.Store(3) // work another goroutine does

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	poll.Until(ctx, t, "the stock", func() bool { return stock.Load() == 3 })
	fmt.Println("stock", stock.Load())

	// A condition that never holds fails the test once ctx is done.
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	poll.Until(short, t, "a fourth item", func() bool { return stock.Load() == 4 })
	// Output:
	// stock 3
	// waiting for a fourth item: context deadline exceeded
}

func ExampleUntilNil() {
	var t testing.TB = printer{} // in a test: the test's own t

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	poll.UntilNil(ctx, t, "the broker", func() error { return errors.New("connection refused") })
	// Output:
	// waiting for the broker: context deadline exceeded; last: connection refused
}
