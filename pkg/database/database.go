// Package database opens a service's relational database through GORM and
// applies its versioned SQL migrations.
//
// One URL picks the engine:
//
//	sqlite:.run/order.db                         SQLite file (pure Go, no cgo), the embedded default
//	postgres://user:pass@host:5432/orderdb       PostgreSQL through pgx
//
// SQLite is opened in WAL mode with a busy timeout and immediate
// transactions: without them concurrent writers fail with SQLITE_BUSY instead
// of waiting. SQLite also ignores SELECT ... FOR UPDATE, so code that must be
// correct on both engines uses conditional UPDATEs and constraints.
//
// Migrations are goose SQL files embedded in each service. On Postgres they
// run under an advisory session lock, so replicas starting together apply
// them once.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Dialect names, as returned by DB.Dialect.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// ErrUnsupportedURL is returned by Open for a URL of another scheme.
var ErrUnsupportedURL = errors.New("unsupported database URL: want sqlite:PATH or postgres://")

// DB is an open database. It embeds the *gorm.DB, which is safe for
// concurrent use; Close it once when the service stops.
type DB struct {
	*gorm.DB
	sql *sql.DB
}

// Open connects to the database at rawURL (see the package doc) and checks
// that it answers. For SQLite it creates the file and its directory if needed.
func Open(ctx context.Context, rawURL string, log *slog.Logger) (*DB, error) {
	dialector, err := dialectorFor(rawURL)
	if err != nil {
		return nil, err
	}
	gdb, err := gorm.Open(dialector, &gorm.Config{
		Logger:         newLogger(log),
		TranslateError: true, // unique violations become gorm.ErrDuplicatedKey on both engines
		NowFunc:        func() time.Time { return time.Now().UTC() },
		// GORM would wrap every Create, Update and Delete made outside a
		// transaction in one of its own: a BEGIN and a COMMIT, two round
		// trips, around a single statement, which is atomic anyway. Writes
		// of several statements are made in explicit transactions.
		SkipDefaultTransaction: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialector.Name(), err)
	}
	sqlDB, err := gdb.DB()
	if err != nil {
		return nil, fmt.Errorf("open %s database: %w", dialector.Name(), err)
	}
	db := &DB{DB: gdb, sql: sqlDB}
	maxConns := 20
	if dialector.Name() == SQLite {
		// One file, one writer at a time: a small pool keeps writers queueing
		// on busy_timeout instead of piling up connections.
		maxConns = 4
	} else {
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	}
	sqlDB.SetMaxOpenConns(maxConns)
	// Keep every connection the pool may open: database/sql keeps only two
	// idle by default and closes the others after each use, so a service
	// busier than two concurrent transactions would dial PostgreSQL (a
	// process fork per connection) for nearly every transaction.
	sqlDB.SetMaxIdleConns(maxConns)
	if err := db.Ping(ctx); err != nil {
		return nil, errors.Join(err, sqlDB.Close())
	}
	return db, nil
}

func dialectorFor(rawURL string) (gorm.Dialector, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, ErrUnsupportedURL
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		return postgres.Open(rawURL), nil
	case "sqlite":
		path := u.Opaque
		if path == "" {
			path = u.Path
		}
		if path == "" {
			return nil, fmt.Errorf("%w: sqlite URL has no file path", ErrUnsupportedURL)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create directory for %s: %w", path, err)
		}
		q := url.Values{}
		for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(NORMAL)"} {
			q.Add("_pragma", p)
		}
		q.Set("_txlock", "immediate")
		return sqlite.Open("file:" + path + "?" + q.Encode()), nil
	default:
		return nil, ErrUnsupportedURL
	}
}

// Dialect returns SQLite or Postgres.
func (db *DB) Dialect() string { return db.Dialector.Name() }

// Ping checks that the database answers; it is the readiness check.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", db.Dialect(), err)
	}
	return nil
}

// Close closes the connection pool.
func (db *DB) Close() error { return db.sql.Close() }

// Migrate applies every migration in fsys (goose SQL files such as
// 00001_create_orders.sql at its root) that the database has not seen yet,
// and logs each one applied.
func Migrate(ctx context.Context, db *DB, fsys fs.FS, log *slog.Logger) error {
	return MigrateTable(ctx, db, fsys, goose.DefaultTablename, log)
}

// MigrateTable is Migrate recording versions in its own table, for a shared
// package (the outbox, the saga) whose schema lives beside a service's own
// and is versioned apart from it.
func MigrateTable(ctx context.Context, db *DB, fsys fs.FS, versionTable string, log *slog.Logger) error {
	dialect := goose.DialectSQLite3
	opts := []goose.ProviderOption{goose.WithTableName(versionTable)}
	if db.Dialect() == Postgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	p, err := goose.NewProvider(dialect, db.sql, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		log.Info("migration applied", slog.String("source", r.Source.Path), slog.String("duration", r.Duration.String()))
	}
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// OpenMigrated opens the database at rawURL and applies the migrations in
// fsys, what every service does at start-up. If migrating fails it closes the
// database again.
func OpenMigrated(ctx context.Context, rawURL string, fsys fs.FS, log *slog.Logger) (*DB, error) {
	db, err := Open(ctx, rawURL, log)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db, fsys, log); err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return db, nil
}
