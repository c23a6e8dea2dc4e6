// Command broker runs the Kafka-protocol broker of the native embedded run
// mode (make run): franz-go's kfake in its own process, one broker, topics
// created on first use, and the log and committed offsets kept in a data
// directory across restarts.
//
// Usage:
//
//	broker [-addr host:port] [-data-dir dir] [-partitions n]
//
// Flags, and the environment variables used when a flag is not given:
//
//	-addr        BROKER_ADDR      127.0.0.1:9092  address to listen on and to advertise
//	                                              to clients; port 0 picks a free one
//	-data-dir    BROKER_DATA_DIR  .run/kafka      created if missing; "" keeps
//	                                              everything in memory
//	-partitions                   3               partitions of an automatically
//	                                              created topic
//
// The broker logs JSON lines to stdout, "broker listening" once clients can
// connect. SIGINT or SIGTERM closes it, which saves its state, and it exits 0.
//
// A crash (kill -9) keeps records and committed offsets but loses every topic
// created automatically, with its records: kfake writes those topics to disk
// only when it closes. Topics created with a CreateTopics request are saved at
// once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/microshop/microshop/pkg/logging"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		os.Exit(1)
	}
}

// run starts the broker and serves until ctx is done, then closes it. It
// returns nil after a clean shutdown, an error if the configuration is
// invalid or the broker cannot start.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := logging.New(stdout, "broker", slog.LevelInfo)

	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake asks to listen on 127.0.0.1; bind what was configured
		// instead. kfake advertises the bound address to clients.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, cfg.Addr)
			if err != nil {
				return nil, fmt.Errorf("listen on -addr %s: %w", cfg.Addr, err)
			}
			return ln, nil
		}),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(cfg.Partitions),
		kfake.WithLogger(kfakeLogger{logger}),
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create -data-dir %q: %w", cfg.DataDir, err)
		}
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}

	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	logger.Info("broker listening",
		"addr", cluster.ListenAddrs()[0],
		"data_dir", cfg.DataDir,
		"partitions", cfg.Partitions)

	<-ctx.Done()
	logger.Info("broker stopping")
	cluster.Close() // saves the state to the data dir; kfake logs a failure
	logger.Info("broker stopped")
	return nil
}

// kfakeLogger passes kfake's log lines to slog, tagged component=kfake.
// kfake formats its messages printf-style, so they arrive as one message
// rather than attributes. kfake logs every request at its info level, so its
// info and debug lines go to slog's debug level and the default handler shows
// only warnings and errors.
type kfakeLogger struct {
	logger *slog.Logger
}

// Logf implements kfake.Logger.
func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var lvl slog.Level
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	case kfake.LogLevelInfo:
		lvl = slog.LevelDebug
	default:
		lvl = slog.LevelDebug - 4
	}
	ctx := context.Background() // kfake passes no context
	if !l.logger.Enabled(ctx, lvl) {
		return
	}
	l.logger.Log(ctx, lvl, fmt.Sprintf(format, args...), "component", "kfake")
}
