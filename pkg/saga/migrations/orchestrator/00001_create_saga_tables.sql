-- The orchestrator's state: one row per saga instance, one row per step
-- operation it started. Portable between SQLite and PostgreSQL: TEXT ids,
-- TIMESTAMP in UTC, no row locks needed for correctness (every transition is
-- an UPDATE conditional on version).

-- +goose Up
CREATE TABLE saga_instances (
    id         TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    -- The caller's JSON, handed to the steps to build their commands.
    data       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('RUNNING', 'COMPENSATING', 'COMPLETED', 'FAILED')),
    -- Index of the step in flight: its action while RUNNING, its
    -- compensation while COMPENSATING.
    step       INTEGER NOT NULL CHECK (step >= 0),
    -- How many times the operation in flight was sent (compensations are re-sent).
    attempt    INTEGER NOT NULL CHECK (attempt >= 1),
    -- RUNNING: the action's deadline; COMPENSATING: when to re-send the
    -- compensation; NULL once finished.
    due_at     TIMESTAMP,
    reason     TEXT NOT NULL DEFAULT '',
    -- Bumped by every transition; a transition applies only to the version it read.
    version    BIGINT NOT NULL CHECK (version >= 1),
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    CHECK ((status IN ('RUNNING', 'COMPENSATING')) = (due_at IS NOT NULL))
);
-- The scan of Run: sagas in flight by due time.
CREATE INDEX saga_instances_status_due_at ON saga_instances (status, due_at);

-- History of every step operation, for operators and dashboards.
CREATE TABLE saga_steps (
    saga_id     TEXT NOT NULL REFERENCES saga_instances (id),
    step        INTEGER NOT NULL CHECK (step >= 0),
    name        TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('action', 'compensate')),
    status      TEXT NOT NULL CHECK (status IN ('STARTED', 'SUCCEEDED', 'FAILED', 'TIMED_OUT')),
    attempts    INTEGER NOT NULL CHECK (attempts >= 1),
    -- Why the action failed, or why the compensation was last refused.
    reason      TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    PRIMARY KEY (saga_id, step, op)
);

-- +goose Down
DROP TABLE saga_steps;
DROP TABLE saga_instances;
