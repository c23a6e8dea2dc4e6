package pgtest_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/microshop/microshop/pkg/pgcluster/pgtest"
)

func TestNewDatabase(t *testing.T) {
	c := pgtest.Start(t)

	t.Run("distinct", func(t *testing.T) {
		a := connect(t, pgtest.NewDatabase(t, c))
		b := connect(t, pgtest.NewDatabase(t, c))
		if got, other := currentDatabase(t, a), currentDatabase(t, b); got == other {
			t.Fatalf("both databases are named %q", got)
		}
		if _, err := a.Exec(t.Context(), "CREATE TABLE only_in_a (id int)"); err != nil {
			t.Fatalf("create table: %v", err)
		}
		var found bool
		if err := b.QueryRow(t.Context(), "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&found); err != nil {
			t.Fatalf("look up table: %v", err)
		}
		if found {
			t.Errorf("table created in the first database is visible in the second")
		}
	})

	// Subtest names become database names; these need sanitizing.
	tests := []struct {
		name string
	}{
		{name: "Mixed Case and-dashes"},
		{name: "ünïcødé"},
		{name: "9 starts with a digit"},
		{name: strings.Repeat("long", 30)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dbURL := pgtest.NewDatabase(t, c)
			u, err := url.Parse(dbURL)
			if err != nil {
				t.Fatalf("parse %q: %v", dbURL, err)
			}
			want := strings.TrimPrefix(u.Path, "/")
			if got := currentDatabase(t, connect(t, dbURL)); got != want {
				t.Errorf("current_database() = %q, want %q from the URL", got, want)
			}
		})
	}
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

func currentDatabase(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var name string
	if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatalf("query current database: %v", err)
	}
	return name
}
