// Package pgcluster starts a throwaway PostgreSQL cluster for local runs and
// tests: a fresh data directory, a server on 127.0.0.1 tuned for speed over
// durability (fsync off), and trust authentication for the superuser
// "postgres". It is not for production data.
//
// It drives the installed initdb and pg_ctl. initdb and pg_ctl refuse to run
// as root, so when the process runs as root they run as the OS user
// "postgres" and the data directory is owned by that user.
//
// A process that exits without calling [Cluster.Stop] leaves the server
// running; stop it with "pg_ctl stop -D <data dir>".
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrPortInUse reports that the server could not listen on its port because
// another process holds it. With a zero Options.Port, Start picks another
// port and tries again before giving up with it.
var ErrPortInUse = errors.New("port in use")

// ErrInvalidDatabaseName reports a database name that CreateDatabase does not
// accept: it must match [a-z_][a-z0-9_]* and be at most 63 bytes long.
var ErrInvalidDatabaseName = errors.New("invalid database name")

const (
	// superuser is the role initdb creates; it needs no password (trust).
	superuser = "postgres"
	// portAttempts bounds how often Start picks a new free port when the
	// one it picked was taken before the server could bind it.
	portAttempts = 3
	// maxSocketPath is the longest Unix socket path Postgres accepts.
	maxSocketPath = 107
	// cleanupTimeout bounds stopping a half-started server after Start fails,
	// which happens with a fresh context because ctx may be the cause.
	cleanupTimeout = time.Minute
	// logTail is how much of a command's or the server's output goes into
	// an error.
	logTail = 2048
)

// Options configures Start. The zero value is usable: a data directory under
// os.TempDir, a free port, output discarded.
type Options struct {
	// Dir is the parent of the data directory; "" means os.TempDir(). The
	// data directory is created inside it with os.MkdirTemp and removed by
	// Stop. When running as root, Dir and every directory above it must be
	// searchable by the user "postgres" (t.TempDir() is not).
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Log receives the output of initdb and pg_ctl, and the server log when
	// the cluster stops. nil discards it; errors from Start still carry the
	// tail of the output that explains them.
	Log io.Writer
	// Settings are more server settings, each "name=value" as the server's
	// -c option takes it, applied after the package's own (a setting given
	// here wins), for example "shared_preload_libraries=pg_stat_statements".
	// nil adds none.
	Settings []string
}

// Cluster is a running PostgreSQL server with its own data directory.
// Its methods are safe for concurrent use.
type Cluster struct {
	bins binaries
	run  runner
	dir  string // data directory, also the Unix socket directory
	port int
	// settings are Options.Settings.
	settings []string

	mu      sync.Mutex // guards stopped; held for the whole of Stop
	stopped bool
}

// Start creates a data directory, initialises a cluster in it and starts the
// server, installing Postgres first if EnsureInstalled can. ctx bounds the
// whole start; the returned Cluster outlives it and must be stopped with
// Stop. If Start fails it stops what it started and removes the data
// directory.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if err := EnsureInstalled(ctx, opts.Log); err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	bins, err := findBinaries()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	// The tools run inside the data directory, so its path must be absolute.
	parent := opts.Dir
	if parent != "" {
		if parent, err = filepath.Abs(parent); err != nil {
			return nil, fmt.Errorf("start postgres: %w", err)
		}
	}
	dir, err := os.MkdirTemp(parent, "pgcluster-")
	if err != nil {
		return nil, fmt.Errorf("start postgres: create data directory: %w", err)
	}
	c := &Cluster{
		bins:     bins,
		run:      runner{dir: dir, cred: cred, log: opts.Log},
		dir:      dir,
		settings: opts.Settings,
	}
	if err := c.start(ctx, opts.Port); err != nil {
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		return nil, fmt.Errorf("start postgres: %w", errors.Join(err, c.Stop(cleanupCtx)))
	}
	return c, nil
}

// start initialises the data directory and starts the server on port, or on
// a free port when port is 0.
func (c *Cluster) start(ctx context.Context, port int) error {
	if cred := c.run.cred; cred != nil {
		if err := os.Chown(c.dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown data directory: %w", err)
		}
	}
	err := c.run.run(ctx, c.bins.initdb,
		"-D", c.dir, "-A", "trust", "-U", superuser, "--no-sync", "-E", "UTF8", "--locale=C")
	if err != nil {
		return err
	}
	attempts := portAttempts
	if port != 0 {
		attempts = 1
	}
	for range attempts {
		p := port
		if p == 0 {
			if p, err = freePort(ctx); err != nil {
				return err
			}
		}
		if err = c.startServer(ctx, p); !errors.Is(err, ErrPortInUse) {
			break
		}
	}
	return err
}

// startServer starts the server on port and waits until it accepts
// connections.
func (c *Cluster) startServer(ctx context.Context, port int) error {
	logPath := c.serverLogPath()
	// pg_ctl hands -o to the server through sh, hence the quoting. Postgres
	// refuses socket paths longer than a sockaddr_un holds; without a socket
	// the server is still reachable over TCP.
	socketDir := c.dir
	if len(filepath.Join(c.dir, ".s.PGSQL."+strconv.Itoa(port))) > maxSocketPath {
		socketDir = ""
	}
	serverOpts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c %s"+
		" -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		port, shellQuote("unix_socket_directories="+socketDir))
	for _, setting := range c.settings {
		serverOpts += " -c " + shellQuote(setting)
	}
	err := c.run.run(ctx, c.bins.pgCtl,
		"start", "-w", "-t", "60", "-D", c.dir, "-l", logPath, "-o", serverOpts)
	if err == nil {
		c.port = port
		return nil
	}
	serverLog, readErr := os.ReadFile(logPath)
	if readErr != nil && !errors.Is(readErr, fs.ErrNotExist) {
		return errors.Join(err, fmt.Errorf("read server log: %w", readErr))
	}
	// The next attempt appends to a fresh log, so this one goes to Log now.
	if removeErr := c.flushServerLog(); removeErr != nil {
		return errors.Join(err, removeErr)
	}
	if bytes.Contains(serverLog, []byte("Address already in use")) {
		return fmt.Errorf("listen on 127.0.0.1:%d: %w", port, ErrPortInUse)
	}
	if serverLog := tail(serverLog); serverLog != "" {
		return fmt.Errorf("%w\nserver log:\n%s", err, serverLog)
	}
	return err
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (c *Cluster) Port() int {
	return c.port
}

// DataDir returns the data directory, which also holds the server log
// (server.log) and the Unix socket. Stop removes it.
func (c *Cluster) DataDir() string {
	return c.dir
}

// URL returns a connection URL for database as the superuser "postgres",
// which needs no password.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable",
		superuser, c.port, url.PathEscape(database))
}

// CreateDatabase creates the database name and returns its URL. name must
// match [a-z_][a-z0-9_]* and be at most 63 bytes; otherwise CreateDatabase
// returns an error wrapping ErrInvalidDatabaseName without touching the server.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	if err := validateDatabaseName(name); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %q: %w", name, err)
	}
	return c.URL(name), nil
}

// validateDatabaseName accepts lower-case letters, digits and underscores
// within Postgres's 63-byte identifier limit, so the name needs no escaping
// in a URL and Postgres neither folds nor truncates it.
func validateDatabaseName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("%w: length %d, want 1 to 63", ErrInvalidDatabaseName, len(name))
	}
	for i, r := range name {
		lower := r == '_' || r >= 'a' && r <= 'z'
		if !lower && (i == 0 || r < '0' || r > '9') {
			return fmt.Errorf("%w: %q at byte %d, want [a-z_][a-z0-9_]*", ErrInvalidDatabaseName, r, i)
		}
	}
	return nil
}

// Stop stops the server (pg_ctl stop -m fast, then -m immediate if that
// fails), copies the server log to Options.Log and removes the data
// directory. Stop after a successful Stop does nothing; after a failed one
// it tries again.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	running, err := c.running(ctx)
	if err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	if running {
		if err := c.pgCtlStop(ctx, "fast"); err != nil {
			if errImmediate := c.pgCtlStop(ctx, "immediate"); errImmediate != nil {
				return fmt.Errorf("stop postgres: %w", errors.Join(err, errImmediate))
			}
		}
	}
	if err := c.flushServerLog(); err != nil {
		return fmt.Errorf("stop postgres: %w", err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("stop postgres: remove data directory: %w", err)
	}
	c.stopped = true
	return nil
}

// running reports whether a server runs on the data directory.
func (c *Cluster) running(ctx context.Context) (bool, error) {
	err := c.run.run(ctx, c.bins.pgCtl, "status", "-D", c.dir)
	// pg_ctl status exits 3 when no server runs, 4 when there is no
	// usable data directory (initdb failed or never ran).
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && (exitErr.ExitCode() == 3 || exitErr.ExitCode() == 4) {
		return false, nil
	}
	return err == nil, err
}

func (c *Cluster) pgCtlStop(ctx context.Context, mode string) error {
	return c.run.run(ctx, c.bins.pgCtl, "stop", "-w", "-t", "60", "-D", c.dir, "-m", mode)
}

func (c *Cluster) serverLogPath() string {
	return filepath.Join(c.dir, "server.log")
}

// flushServerLog copies the server log to Log and removes it.
func (c *Cluster) flushServerLog() error {
	f, err := os.Open(c.serverLogPath())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer f.Close()
	if c.run.log != nil {
		if _, err := io.Copy(c.run.log, f); err != nil {
			return fmt.Errorf("copy server log: %w", err)
		}
	}
	if err := os.Remove(c.serverLogPath()); err != nil {
		return fmt.Errorf("remove server log: %w", err)
	}
	return nil
}

// runner runs the Postgres tools as the user that owns the data directory.
type runner struct {
	dir  string              // working directory, readable by the user
	cred *syscall.Credential // nil: the current user
	log  io.Writer           // nil: discard
	env  []string            // added to this process's environment
}

// run runs name with args. Its error carries the tail of the output.
func (r runner) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = r.dir
	if len(r.env) > 0 {
		cmd.Env = append(os.Environ(), r.env...)
	}
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	var out bytes.Buffer
	w := io.Writer(&out)
	if r.log != nil {
		w = io.MultiWriter(r.log, &out)
	}
	cmd.Stdout, cmd.Stderr = w, w
	// pg_ctl start leaves the server running; should it ever keep the
	// output pipe open, stop waiting for it rather than hang.
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if out := tail(out.Bytes()); out != "" {
		return fmt.Errorf("run %s %s: %w\n%s", filepath.Base(name), args[0], err, out)
	}
	return fmt.Errorf("run %s %s: %w", filepath.Base(name), args[0], err)
}

// serverCredential returns the credential initdb and pg_ctl run with: nil
// for the current user, the user "postgres" when running as root.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("look up user postgres to run initdb as (it refuses root): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse uid of user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("parse gid of user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(ctx context.Context) (int, error) {
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	return port, nil
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns the end of out, starting at a line boundary, for errors.
func tail(out []byte) string {
	out = bytes.TrimSpace(out)
	if len(out) > logTail {
		out = out[len(out)-logTail:]
		if i := bytes.IndexByte(out, '\n'); i >= 0 {
			out = out[i+1:]
		}
	}
	return string(out)
}
