package saga

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/microshop/microshop/pkg/database"
)

//go:embed migrations
var migrations embed.FS

// Version tables of the package's two schemas, apart from the service's own
// goose_db_version.
const (
	orchestratorVersionTable = "saga_orchestrator_db_version"
	barrierVersionTable      = "saga_barrier_db_version"
)

// MigrateOrchestrator creates or upgrades the orchestrator's tables,
// saga_instances and saga_steps, in db. It is safe to call at every start and
// from several replicas at once (see database.MigrateTable).
func MigrateOrchestrator(ctx context.Context, db *database.DB, log *slog.Logger) error {
	return migrate(ctx, db, "migrations/orchestrator", orchestratorVersionTable, log)
}

// MigrateBarrier creates or upgrades a participant's saga_barrier table in
// db, with the same guarantees as MigrateOrchestrator.
func MigrateBarrier(ctx context.Context, db *database.DB, log *slog.Logger) error {
	return migrate(ctx, db, "migrations/barrier", barrierVersionTable, log)
}

func migrate(ctx context.Context, db *database.DB, dir, versionTable string, log *slog.Logger) error {
	fsys, err := fs.Sub(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", dir, err)
	}
	if err := database.MigrateTable(ctx, db, fsys, versionTable, log); err != nil {
		return fmt.Errorf("migrate %s: %w", dir, err)
	}
	return nil
}
