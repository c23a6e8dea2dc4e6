package logging_test

import (
	"log/slog"
	"os"
	"strings"

	"github.com/microshop/microshop/pkg/logging"
)

func Example() {
	var out strings.Builder // os.Stdout in main
	log := logging.New(&out, "order", slog.LevelInfo)
	log.Debug("not written: below the level")
	log.Info("order created", "order_id", "o-1")

	// Every line is one JSON object; without its time it reads:
	line := out.String()
	os.Stdout.WriteString(line[strings.Index(line, `"level"`):])
	// Output:
	// "level":"INFO","msg":"order created","service":"order","order_id":"o-1"}
}
