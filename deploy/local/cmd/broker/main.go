// Command broker runs the Kafka-protocol broker of the native embedded run
// mode (make run): franz-go's kfake in its own process, one broker, topics
// created on first use, and the log and committed offsets kept in a data
// directory across restarts.
//
// Usage:
//
//	broker [-addr host:port] [-advertise host:port] [-data-dir dir] [-partitions n]
//	broker healthcheck
//
// Flags, and the environment variables used when a flag is not given:
//
//	-addr        BROKER_ADDR      127.0.0.1:9092  address to listen on and to advertise
//	                                              to clients; port 0 picks a free one
//	-advertise   BROKER_ADVERTISE_ADDR  none      address clients are told to connect to
//	                                              instead of -addr (in a container:
//	                                              -addr 0.0.0.0:9092 -advertise broker:9092)
//	-data-dir    BROKER_DATA_DIR  .run/kafka      created if missing; "" keeps
//	                                              everything in memory
//	-partitions                   3               partitions of an automatically
//	                                              created topic
//
// "broker healthcheck", with the same flags or variables, asks the broker
// listening there for its API versions and exits 0 if it answers, 1 if not:
// a container's healthcheck without curl or a shell.
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
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/microshop/microshop/pkg/logging"
	"github.com/microshop/microshop/pkg/messaging"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := healthcheck(ctx, os.Args[2:], os.Getenv)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "broker healthcheck:", err)
			os.Exit(1)
		}
		return
	}
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
		// instead. kfake advertises the listener's address to clients:
		// -advertise, if given, stands in for it.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			ln, err := net.Listen(network, cfg.Addr)
			if err != nil {
				return nil, fmt.Errorf("listen on -addr %s: %w", cfg.Addr, err)
			}
			if cfg.Advertise != "" {
				return advertised{Listener: ln, addr: advertisedAddr(cfg.Advertise)}, nil
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

// advertised is a listener whose Addr is the address advertised to clients,
// which is what kfake tells them.
type advertised struct {
	net.Listener
	addr advertisedAddr
}

func (l advertised) Addr() net.Addr { return l.addr }

// advertisedAddr is a host:port whose host may be a name.
type advertisedAddr string

func (a advertisedAddr) Network() string { return "tcp" }
func (a advertisedAddr) String() string  { return string(a) }

// healthcheck asks the broker configured by args and getenv, as run reads
// them, for its API versions, on the loopback interface when it listens on
// every one.
func healthcheck(ctx context.Context, args []string, getenv func(string) string) error {
	cfg, err := loadConfig(args, getenv, io.Discard)
	if err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return messaging.Config{Brokers: []string{net.JoinHostPort(host, port)}, ClientID: "healthcheck"}.Ping(ctx)
}
