// Package sagaservice builds and runs the parts that every service of the
// checkout saga (order, inventory, payment) is made of alike, so that each
// service's run lists only what is its own:
//
//   - the configuration they share (ReadConfig): HTTP address, log level,
//     database URL, Kafka brokers, consumer concurrency, the chaos crash;
//   - the database, migrated with the service's schema, the outbox's and the
//     saga package's (Open);
//   - the Kafka topics, created at start-up, the writer and the outbox relay
//     that publishes through it;
//   - what every process has (pkg/process): telemetry — traces, the metrics
//     registry — and the HTTP router with /healthz, /readyz (here: database
//     and Kafka), /metrics and the opt-in profiler; the database's queries
//     are traced too;
//   - the consumer of the service's one topic (Consume);
//   - their lifecycle (Run): the relay, the service's own background tasks
//     and the consumer are started in that order, HTTP serves until the
//     context ends, then everything stops in reverse (pkg/lifecycle).
//
// A Service is built by one goroutine (Open, Consume, the service's own
// registrations on Router and Metrics), then Run once and Closed.
package sagaservice

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/microshop/microshop/pkg/config"
	"github.com/microshop/microshop/pkg/database"
	"github.com/microshop/microshop/pkg/faultinject"
	"github.com/microshop/microshop/pkg/lifecycle"
	"github.com/microshop/microshop/pkg/limit"
	"github.com/microshop/microshop/pkg/messaging"
	"github.com/microshop/microshop/pkg/outbox"
	"github.com/microshop/microshop/pkg/process"
)

// Config is the configuration the services share, read by ReadConfig.
type Config struct {
	// Config is what every process has: HTTP, log level, admin address.
	process.Config
	DatabaseURL  string
	KafkaBrokers []string
	// ConsumerConcurrency is how many consumed messages, each of a
	// different partition, are handled at once (messaging.ConsumerConfig's
	// Concurrency).
	ConsumerConcurrency int
	// CrashAfterHandle is the probability, from 0 to 1, that the process
	// exits (code 3) after a consumed message was handled and before it is
	// committed: a fault injected by the chaos harness so that duplicate
	// deliveries really happen (faultinject.CrashAfterHandle). 0, the
	// default, never crashes.
	CrashAfterHandle float64
}

// ReadConfig reads the shared variables of service name through env, whose
// prefix is the service's (config.New(getenv, "ORDER_")): those of every
// process (process.ReadConfig: HTTP_ADDR, default httpAddr,
// SHUTDOWN_TIMEOUT, LOG_LEVEL, ADMIN_ADDR; and process.ReadLimit: LIMIT_RULES), DATABASE_URL (default
// sqlite:.run/data/<name>.db), KAFKA_BROKERS, CONSUMER_CONCURRENCY and
// CHAOS_CRASH_AFTER_HANDLE. What does not parse is in env.Err().
func ReadConfig(env *config.Reader, name, httpAddr string) Config {
	pc := process.ReadConfig(env, httpAddr)
	pc.Limit = process.ReadLimit(env)
	return Config{
		Config:              pc,
		DatabaseURL:         env.URL("DATABASE_URL", "sqlite:.run/data/"+name+".db", "sqlite", "postgres", "postgresql"),
		KafkaBrokers:        env.Addrs("KAFKA_BROKERS", []string{"127.0.0.1:9092"}),
		ConsumerConcurrency: env.Int("CONSUMER_CONCURRENCY", 8, 1, messaging.MaxConcurrency),
		CrashAfterHandle:    env.Probability("CHAOS_CRASH_AFTER_HANDLE", 0),
	}
}

// LogAttrs returns c for a log line, the database password masked; a
// service's Config.LogValue adds its own after them.
func (c Config) LogAttrs() []slog.Attr {
	return append(c.Config.LogAttrs(),
		slog.String("database_url", config.Redact(c.DatabaseURL)),
		slog.Any("kafka_brokers", c.KafkaBrokers),
		slog.Int("consumer_concurrency", c.ConsumerConcurrency),
		slog.Float64("chaos_crash_after_handle", c.CrashAfterHandle),
	)
}

// Spec is what tells the services apart in the parts they share.
type Spec struct {
	// Name is the process name: the Kafka client id and consumer group.
	Name string
	// Migrations is the service's own schema (goose SQL files).
	Migrations fs.FS
	// Migrate creates the schema of the saga package the service uses,
	// saga.MigrateOrchestrator or saga.MigrateBarrier; nil for a service
	// outside the saga that only follows its events (one made by make
	// new-service). The outbox's is always created.
	Migrate func(ctx context.Context, db *database.DB, log *slog.Logger) error
	// Topics are created at start-up, if missing, with Partitions
	// partitions each: the topics the service produces or consumes, and
	// their dead-letter topics (the embedded broker loses auto-created
	// topics on a crash).
	Topics     []string
	Partitions int
	// Limit are the rules of the service's routes, their priorities
	// (pkg/limit): a route without one is Normal. The LIMIT_RULES
	// document, or Consul's, may override them route by route.
	Limit map[string]limit.Route
}

// Service is the shared parts of a running service. Create it with Open.
type Service struct {
	// DB is the service's migrated database.
	DB *database.DB
	// Metrics is the process's registry, served at /metrics
	// (Process.Telemetry.Registry).
	Metrics *prometheus.Registry
	// Relay publishes the outbox; Notify it after a commit that added
	// messages.
	Relay *outbox.Relay
	// Router serves HTTP; the service registers its API on it.
	Router *gin.Engine
	// Process is the observed HTTP server underneath: its Telemetry
	// instruments the service's own clients.
	Process *process.Process

	spec     Spec
	cfg      Config
	log      *slog.Logger
	kafka    messaging.Config
	writer   *messaging.Writer
	consumer *messaging.Consumer
}

// Open starts the process's telemetry (the OTEL_* variables read through
// getenv), opens the database and migrates it, creates the topics (retrying
// until Kafka answers or ctx ends), and builds the Kafka writer, the outbox
// relay and the router. On an error, what it opened is closed again. Close
// the Service once Run returned.
func Open(ctx context.Context, spec Spec, cfg Config, getenv func(string) string, log *slog.Logger) (*Service, error) {
	s := &Service{spec: spec, cfg: cfg, log: log}
	if err := s.open(ctx, getenv); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func (s *Service) open(ctx context.Context, getenv func(string) string) error {
	var err error
	if s.Process, err = process.Start(ctx, s.spec.Name, s.cfg.Config, getenv, s.log, process.WithLimit(nil, s.spec.Limit)); err != nil {
		return err
	}
	s.Metrics, s.Router = s.Process.Telemetry.Registry, s.Process.Router
	if s.DB, err = database.OpenMigrated(ctx, s.cfg.DatabaseURL, s.spec.Migrations, s.log); err != nil {
		return err
	}
	if err := outbox.Migrate(ctx, s.DB, s.log); err != nil {
		return err
	}
	if s.spec.Migrate != nil {
		if err := s.spec.Migrate(ctx, s.DB, s.log); err != nil {
			return err
		}
	}
	// Traced from here on: the migrations' statements would only be noise.
	if err := s.Process.Telemetry.InstrumentDB(s.DB.DB); err != nil {
		return err
	}
	s.kafka = messaging.Config{Brokers: s.cfg.KafkaBrokers, ClientID: s.spec.Name}
	if err := messaging.EnsureTopicsWithRetry(ctx, s.kafka, s.spec.Partitions, s.log, s.spec.Topics...); err != nil {
		return err
	}
	s.writer = messaging.NewWriter(s.kafka)
	if s.Relay, err = outbox.NewRelay(s.DB, s.writer, outbox.RelayOptions{}, s.log, s.Metrics); err != nil {
		return err
	}
	s.Process.Checks.Add("database", s.DB.Ping)
	s.Process.Checks.Add("kafka", s.kafka.Ping)
	return nil
}

// Consume makes handle the handler of topic, read by the service's consumer
// group (its Name) with the configured concurrency; a message handle can
// never process goes to deadLetterTopic. The consumer runs in Run; call
// Consume once, before.
func (s *Service) Consume(topic, deadLetterTopic string, handle messaging.Handler) error {
	if s.consumer != nil {
		return errors.New("consume: the service has a consumer already")
	}
	consumer, err := messaging.NewConsumer(messaging.ConsumerConfig{
		Config:          s.kafka,
		GroupID:         s.spec.Name,
		Topics:          []string{topic},
		DeadLetterTopic: deadLetterTopic,
		Concurrency:     s.cfg.ConsumerConcurrency,
		AfterHandle:     faultinject.CrashAfterHandle(s.cfg.CrashAfterHandle, os.Exit, s.log),
	}, handle, s.log, s.Metrics)
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	s.consumer = consumer
	return nil
}

// Run serves HTTP until ctx ends, with the outbox relay, tasks and the
// consumer running in the background: started in that order, and stopped
// in reverse once HTTP has drained, each after the one stopped before it
// returned (lifecycle.Run). If the consumer fails, the service stops with
// its error. Run returns once every goroutine it started has ended.
func (s *Service) Run(ctx context.Context, tasks ...lifecycle.Task) error {
	all := append([]lifecycle.Task{{Name: "outbox relay", Run: lifecycle.NoError(s.Relay.Run)}}, tasks...)
	if s.consumer != nil {
		all = append(all, lifecycle.Task{Name: "consumer", Run: s.consumer.Run})
	}
	return s.Process.Run(ctx, all...)
}

// Close closes the consumer, the writer and the database, in that order,
// then flushes the last spans; call it once Run returned.
func (s *Service) Close() error {
	var errs []error
	if s.consumer != nil {
		errs = append(errs, s.consumer.Close())
	}
	if s.writer != nil {
		errs = append(errs, s.writer.Close())
	}
	if s.DB != nil {
		errs = append(errs, s.DB.Close())
	}
	if s.Process != nil {
		errs = append(errs, s.Process.Close())
	}
	return errors.Join(errs...)
}
