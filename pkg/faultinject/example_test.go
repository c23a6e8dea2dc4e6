package faultinject_test

import (
	"fmt"
	"log/slog"

	"github.com/segmentio/kafka-go"

	"github.com/microshop/microshop/pkg/faultinject"
)

// A consumer's AfterHandle hook that crashes after every message: the
// process would exit with code 3 before committing, and the broker would
// deliver the message again. A probability of 0 installs no hook.
func ExampleCrashAfterHandle() {
	exit := func(code int) { fmt.Println("exit", code) } // os.Exit in main
	fmt.Println(faultinject.CrashAfterHandle(0, exit, slog.New(slog.DiscardHandler)) == nil)
	hook := faultinject.CrashAfterHandle(1, exit, slog.New(slog.DiscardHandler))
	hook(kafka.Message{Topic: "checkout.replies", Offset: 7})
	// Output:
	// true
	// exit 3
}
