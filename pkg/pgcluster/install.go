package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ErrNotInstalled reports that initdb and pg_ctl cannot be found and
// EnsureInstalled could not install them.
var ErrNotInstalled = errors.New("postgres not installed")

// debianBinDirs is where Debian's postgresql packages put the server tools,
// one directory per major version; they are not on PATH there.
const debianBinDirs = "/usr/lib/postgresql/*/bin"

// binaries are the paths of the tools Start runs.
type binaries struct {
	initdb string
	pgCtl  string
}

// EnsureInstalled makes sure initdb and pg_ctl can be found: on PATH, else
// in the newest /usr/lib/postgresql/*/bin. If neither has them and this is
// Debian and the process runs as root, it installs the postgresql package
// with apt-get, writing apt-get's output to log (nil discards it). Otherwise
// it returns an error wrapping ErrNotInstalled that says how to install
// Postgres. Concurrent installs (test packages run in parallel) queue on
// apt's lock rather than fail.
func EnsureInstalled(ctx context.Context, log io.Writer) error {
	if _, err := findBinaries(); err == nil {
		return nil
	}
	_, err := os.Stat("/etc/debian_version")
	debian := err == nil
	switch {
	case !debian:
		return fmt.Errorf("find postgres: %w: no initdb and pg_ctl on PATH or in %s;"+
			" install PostgreSQL (e.g. apt-get install postgresql, dnf install postgresql-server,"+
			" brew install postgresql@15) and put its bin directory on PATH", ErrNotInstalled, debianBinDirs)
	case os.Geteuid() != 0:
		return fmt.Errorf("find postgres: %w: no initdb and pg_ctl on PATH or in %s;"+
			" install it as root with: apt-get install postgresql", ErrNotInstalled, debianBinDirs)
	}
	r := runner{dir: "/", log: log, env: []string{"DEBIAN_FRONTEND=noninteractive"}}
	// Wait for apt's locks instead of failing when another install holds them.
	wait := []string{"-o", "DPkg::Lock::Timeout=600"}
	if err := r.run(ctx, "apt-get", append(wait, "update")...); err != nil {
		return fmt.Errorf("install postgres: %w", err)
	}
	if err := r.run(ctx, "apt-get", append(wait, "install", "-y", "--no-install-recommends", "postgresql")...); err != nil {
		return fmt.Errorf("install postgres: %w", err)
	}
	if _, err := findBinaries(); err != nil {
		return fmt.Errorf("install postgres: %w", err)
	}
	return nil
}

// findBinaries looks for initdb and pg_ctl on PATH, then in the newest
// Debian version directory that has both.
func findBinaries() (binaries, error) {
	initdb, errInitdb := exec.LookPath("initdb")
	pgCtl, errPgCtl := exec.LookPath("pg_ctl")
	if errInitdb == nil && errPgCtl == nil {
		return binaries{initdb: initdb, pgCtl: pgCtl}, nil
	}
	dirs, err := filepath.Glob(debianBinDirs)
	if err != nil {
		return binaries{}, fmt.Errorf("find postgres: %w", err)
	}
	for _, dir := range newestFirst(dirs) {
		b := binaries{initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl")}
		if isExecutable(b.initdb) && isExecutable(b.pgCtl) {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("find postgres: %w", ErrNotInstalled)
}

// newestFirst returns the /usr/lib/postgresql/VERSION/bin directories in
// dirs, newest version first ("15" before "9.6"), dropping any whose
// version is not numeric.
func newestFirst(dirs []string) []string {
	type versioned struct {
		dir     string
		version []int
	}
	var vs []versioned
	for _, dir := range dirs {
		if v, ok := parseVersion(filepath.Base(filepath.Dir(dir))); ok {
			vs = append(vs, versioned{dir: dir, version: v})
		}
	}
	slices.SortStableFunc(vs, func(a, b versioned) int {
		return -slices.Compare(a.version, b.version)
	})
	sorted := make([]string, len(vs))
	for i, v := range vs {
		sorted[i] = v.dir
	}
	return sorted
}

// parseVersion parses a dotted version such as "9.6" or "15".
func parseVersion(s string) ([]int, bool) {
	var v []int
	for part := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(part)
		if err != nil || n < 0 {
			return nil, false
		}
		v = append(v, n)
	}
	return v, true
}

func isExecutable(path string) bool {
	info, err := os.Stat(path)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}
