package database_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing/fstest"

	"github.com/microshop/microshop/pkg/database"
)

func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)

	// A service embeds its migrations (//go:embed *.sql); a map stands in here.
	migrations := fstest.MapFS{"00001_notes.sql": {Data: []byte(`
-- +goose Up
CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
-- +goose Down
DROP TABLE notes;
`)}}
	db, err := database.OpenMigrated(ctx, "sqlite:"+filepath.Join(dir, "shop.db"), migrations, log)
	if err != nil {
		panic(err)
	}
	defer db.Close()

	if err := db.WithContext(ctx).Exec("INSERT INTO notes (body) VALUES (?)", "hello").Error; err != nil {
		panic(err)
	}
	var body string
	if err := db.WithContext(ctx).Raw("SELECT body FROM notes").Scan(&body).Error; err != nil {
		panic(err)
	}
	fmt.Println(db.Dialect(), body)
	// Output: sqlite hello
}
