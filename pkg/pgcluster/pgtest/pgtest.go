// Package pgtest gives tests a real PostgreSQL server: Start runs a throwaway
// cluster for the life of a test, NewDatabase hands each test its own
// database on it.
//
// A test that cannot get Postgres skips on a developer machine and fails
// under CI (the environment variable CI is non-empty), so a CI run never
// passes by skipping its integration tests.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/pkg/pgcluster"
)

// stopTimeout bounds stopping the cluster in t.Cleanup, when the test's
// context is already done.
const stopTimeout = time.Minute

// Start starts a cluster for the test and stops it in t.Cleanup. If Postgres
// is not installed and cannot be installed (see pgcluster.EnsureInstalled),
// Start calls t.Fatalf under CI (CI non-empty, e.g. CI=true) and t.Skipf
// otherwise. Any other failure to start is a t.Fatalf.
func Start(t testing.TB) *pgcluster.Cluster {
	t.Helper()
	c, err := pgcluster.Start(t.Context(), pgcluster.Options{})
	switch {
	case errors.Is(err, pgcluster.ErrNotInstalled) && os.Getenv("CI") == "":
		t.Skipf("postgres unavailable (set CI=true to fail instead): %v", err)
	case err != nil:
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return c
}

// NewDatabase creates a database on c named after the test plus a random
// suffix, so that every call gets a fresh one, and returns its URL. The
// database lives until the cluster stops.
func NewDatabase(t testing.TB, c *pgcluster.Cluster) string {
	t.Helper()
	name := databaseName(t.Name(), strings.ToLower(rand.Text()[:10]))
	url, err := c.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatalf("new database: %v", err)
	}
	return url
}

// databaseName turns testName into a valid database name ending in
// "_"+suffix, at most 63 bytes: lower case, runs of characters other than
// [a-z0-9] folded into "_", cut short if need be. suffix must itself be
// made of [a-z0-9_].
func databaseName(testName, suffix string) string {
	const maxLen = 63
	var b strings.Builder
	b.WriteString("t_") // a name may not start with a digit
	lastUnderscore := true
	for _, r := range strings.ToLower(testName) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			lastUnderscore = false
		case !lastUnderscore:
			b.WriteByte('_')
			lastUnderscore = true
		}
	}
	prefix := b.String()
	prefix = strings.TrimRight(prefix[:min(len(prefix), maxLen-len(suffix)-1)], "_")
	return prefix + "_" + suffix
}
