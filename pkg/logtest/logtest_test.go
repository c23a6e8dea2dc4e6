package logtest_test

import (
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/microshop/microshop/pkg/logtest"
)

func TestLines(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{name: "nothing written", want: nil},
		{name: "one line", writes: []string{"a\n"}, want: []string{"a"}},
		{name: "a line written in two parts", writes: []string{"a", "b\n"}, want: []string{"ab"}},
		{name: "an unfinished last line is left out", writes: []string{"a\nb"}, want: []string{"a"}},
		{name: "an empty line is kept", writes: []string{"a\n\nb\n"}, want: []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b logtest.Buffer
			for _, w := range tt.writes {
				if _, err := b.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(tt.want, b.Lines()); diff != "" {
				t.Errorf("Lines() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConcurrentLogging: records logged from many goroutines, while another
// reads, arrive whole, one a line (run with -race to check the locking too).
func TestConcurrentLogging(t *testing.T) {
	var b logtest.Buffer
	log := slog.New(slog.NewJSONHandler(&b, nil))
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { log.Info("record", "i", i) })
	}
	wg.Go(func() {
		for range 20 {
			_ = b.Lines()
		}
	})
	wg.Wait()

	var got []int
	for _, line := range b.Lines() {
		var rec struct{ I int }
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %q is not a whole JSON record: %v", line, err)
		}
		got = append(got, rec.I)
	}
	slices.Sort(got)
	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records' i (-want +got):\n%s", diff)
	}
}
