// Package migrations holds the order database schema as versioned goose SQL
// files, embedded so the binary migrates its own database at start-up.
package migrations

import "embed"

// FS holds the migration files, named NNNNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
