package pgcluster_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/microshop/microshop/pkg/logtest"
	"github.com/microshop/microshop/pkg/pgcluster"
	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
)

func TestCluster(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t)

	t.Run("URL", func(t *testing.T) {
		want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/shop?sslmode=disable", c.Port())
		if got := c.URL("shop"); got != want {
			t.Errorf("URL(%q) = %q, want %q", "shop", got, want)
		}
	})

	t.Run("Port", func(t *testing.T) {
		conn := connect(t, c.URL("postgres"))
		var got int
		if err := conn.QueryRow(t.Context(), "SELECT inet_server_port()").Scan(&got); err != nil {
			t.Fatalf("query server port: %v", err)
		}
		if got != c.Port() {
			t.Errorf("server port = %d, want Port() = %d", got, c.Port())
		}
	})

	t.Run("CreateDatabase", func(t *testing.T) {
		tests := []struct {
			name   string
			dbName string
		}{
			{name: "plain", dbName: "shop"},
			{name: "leading underscore", dbName: "_orders_2"},
			{name: "keyword needs quoting", dbName: "select"},
			{name: "63 bytes", dbName: strings.Repeat("a", 63)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				url, err := c.CreateDatabase(t.Context(), tt.dbName)
				if err != nil {
					t.Fatalf("CreateDatabase(%q): %v", tt.dbName, err)
				}
				if want := c.URL(tt.dbName); url != want {
					t.Errorf("CreateDatabase(%q) url = %q, want %q", tt.dbName, url, want)
				}
				conn := connect(t, url)
				var got string
				if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&got); err != nil {
					t.Fatalf("query current database: %v", err)
				}
				if got != tt.dbName {
					t.Errorf("current_database() = %q, want %q", got, tt.dbName)
				}
				if diff := cmp.Diff([]string{"apple", "pear"}, insertAndList(t, conn)); diff != "" {
					t.Errorf("items (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("CreateDatabase twice", func(t *testing.T) {
		if _, err := c.CreateDatabase(t.Context(), "twice"); err != nil {
			t.Fatalf("first CreateDatabase: %v", err)
		}
		if _, err := c.CreateDatabase(t.Context(), "twice"); err == nil {
			t.Errorf("second CreateDatabase(%q) error = nil, want an error", "twice")
		}
	})

	t.Run("CreateDatabase invalid name", func(t *testing.T) {
		tests := []struct {
			name   string
			dbName string
		}{
			{name: "empty", dbName: ""},
			{name: "upper case", dbName: "Shop"},
			{name: "leading digit", dbName: "1shop"},
			{name: "dash", dbName: "shop-db"},
			{name: "space", dbName: "shop db"},
			{name: "quote", dbName: `shop"; DROP DATABASE postgres; --`},
			{name: "non-ASCII", dbName: "café"},
			{name: "64 bytes", dbName: strings.Repeat("a", 64)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := c.CreateDatabase(t.Context(), tt.dbName)
				if !errors.Is(err, pgcluster.ErrInvalidDatabaseName) {
					t.Errorf("CreateDatabase(%q) error = %v, want %v", tt.dbName, err, pgcluster.ErrInvalidDatabaseName)
				}
			})
		}
	})
}

func TestStop(t *testing.T) {
	t.Parallel()
	c := pgtest.Start(t) // its cleanup makes a third Stop
	addr := fmt.Sprintf("127.0.0.1:%d", c.Port())
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	if _, err := os.Stat(c.DataDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stat data directory after Stop: error = %v, want %v", err, fs.ErrNotExist)
	}
	// pg_ctl stop -w returns once the server has exited, so its port is
	// closed by now.
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("dial %s after Stop succeeded, want an error", addr)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestTwoClustersAtOnce(t *testing.T) {
	t.Parallel()
	clusters := []*pgcluster.Cluster{pgtest.Start(t), pgtest.Start(t)}
	if clusters[0].Port() == clusters[1].Port() {
		t.Fatalf("both clusters listen on port %d", clusters[0].Port())
	}

	for i, c := range clusters {
		url, err := c.CreateDatabase(t.Context(), "shop")
		if err != nil {
			t.Fatalf("cluster %d: CreateDatabase: %v", i, err)
		}
		conn := connect(t, url)
		var got int
		if err := conn.QueryRow(t.Context(), "SELECT inet_server_port()").Scan(&got); err != nil {
			t.Fatalf("cluster %d: query server port: %v", i, err)
		}
		if got != c.Port() {
			t.Errorf("cluster %d: server port = %d, want %d", i, got, c.Port())
		}
	}
}

// TestStartLongDir starts a cluster under a directory too deep for a Unix
// socket path, and checks Options.Dir and Options.Log are honoured.
func TestStartLongDir(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	dir := sharedTempDir(t, strings.Repeat("d", 90))
	var log logtest.Buffer

	c, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: dir, Log: &log})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	if !strings.HasPrefix(c.DataDir(), dir+string(os.PathSeparator)) {
		t.Errorf("DataDir() = %q, want it inside %q", c.DataDir(), dir)
	}
	url, err := c.CreateDatabase(t.Context(), "shop")
	if err != nil {
		t.Fatalf("CreateDatabase: %v", err)
	}
	if diff := cmp.Diff([]string{"apple", "pear"}, insertAndList(t, connect(t, url))); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}

	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("read %s after Stop = %d entries, %v; want it empty", dir, len(entries), err)
	}
	if want := "database system is ready to accept connections"; !strings.Contains(log.String(), want) {
		t.Errorf("Log does not contain %q; got:\n%s", want, log.String())
	}
}

// TestStartSettings starts a cluster with extra settings: one the package
// sets itself, overridden, and a library to preload, whose extension then
// works.
func TestStartSettings(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	c, err := pgcluster.Start(t.Context(), pgcluster.Options{
		Dir:      sharedTempDir(t, ""),
		Settings: []string{"max_connections=50", "shared_preload_libraries=pg_stat_statements"},
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	conn := connect(t, c.URL("postgres"))
	for setting, want := range map[string]string{"max_connections": "50", "shared_preload_libraries": "pg_stat_statements"} {
		var got string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatalf("read %s: %v", setting, err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if _, err := conn.Exec(t.Context(), "CREATE EXTENSION pg_stat_statements"); err != nil {
		t.Fatalf("create extension: %v", err)
	}
	var calls int64
	err = conn.QueryRow(t.Context(), "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements WHERE query LIKE 'CREATE EXTENSION%'").Scan(&calls)
	if err != nil || calls != 1 {
		t.Errorf("pg_stat_statements: CREATE EXTENSION called %d times, %v; want 1, nil", calls, err)
	}
}

func TestStartPortInUse(t *testing.T) {
	t.Parallel()
	requirePostgres(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer l.Close()
	dir := sharedTempDir(t, "")

	c, err := pgcluster.Start(t.Context(), pgcluster.Options{Dir: dir, Port: l.Addr().(*net.TCPAddr).Port})
	if c != nil {
		t.Cleanup(func() { c.Stop(context.Background()) })
	}
	if !errors.Is(err, pgcluster.ErrPortInUse) {
		t.Errorf("Start on a taken port: error = %v, want %v", err, pgcluster.ErrPortInUse)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("read %s after failed Start = %d entries, %v; want it empty", dir, len(entries), err)
	}
}

// requirePostgres skips or fails the test, as pgtest.Start does, when
// Postgres is not available.
func requirePostgres(t *testing.T) {
	t.Helper()
	err := pgcluster.EnsureInstalled(t.Context(), nil)
	switch {
	case errors.Is(err, pgcluster.ErrNotInstalled) && os.Getenv("CI") == "":
		t.Skipf("postgres unavailable (set CI=true to fail instead): %v", err)
	case err != nil:
		t.Fatalf("ensure postgres is installed: %v", err)
	}
}

// sharedTempDir returns a new directory that, unlike t.TempDir, the user
// "postgres" can enter when the test runs as root.
func sharedTempDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pgcluster-test-"+name)
	if err != nil {
		t.Fatalf("create temp dir: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("chmod temp dir: %v", err)
	}
	return dir
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// insertAndList creates a table, inserts two rows and reads them back.
func insertAndList(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	ctx := t.Context()
	if _, err := conn.Exec(ctx, "CREATE TABLE items (name text PRIMARY KEY)"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	if _, err := conn.Exec(ctx, "INSERT INTO items (name) VALUES ($1), ($2)", "pear", "apple"); err != nil {
		t.Fatalf("insert: %v", err)
	}
	rows, err := conn.Query(ctx, "SELECT name FROM items ORDER BY name")
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("select: %v", err)
	}
	return names
}
