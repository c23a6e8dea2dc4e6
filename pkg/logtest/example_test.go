package logtest_test

import (
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/microshop/microshop/pkg/logtest"
)

func Example() {
	var logs logtest.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{
		// Without the time the output is the same on every run.
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))

	var wg sync.WaitGroup
	for worker := range 3 {
		wg.Go(func() { log.Info("reserved", "worker", worker) })
	}
	wg.Wait()

	lines := logs.Lines()
	slices.Sort(lines) // the workers ran in any order
	for _, line := range lines {
		fmt.Println(line)
	}
	// Output:
	// level=INFO msg=reserved worker=0
	// level=INFO msg=reserved worker=1
	// level=INFO msg=reserved worker=2
}
