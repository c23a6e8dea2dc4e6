package faultinject_test

import (
	"log/slog"
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/faultinject"
)

func TestCrashAfterHandle(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if hook := faultinject.CrashAfterHandle(0, func(int) { t.Fatal("exit called") }, log); hook != nil {
		t.Fatal("probability 0 must install no hook")
	}
	var codes []int
	hook := faultinject.CrashAfterHandle(1, func(code int) { codes = append(codes, code) }, log)
	hook(kafka.Message{Topic: "t"})
	hook(kafka.Message{Topic: "t"})
	if len(codes) != 2 || codes[0] != 3 || codes[1] != 3 {
		t.Errorf("exit codes = %v, want [3 3] at probability 1", codes)
	}
}
