-- A participant's barrier (see saga.Barrier): one row per saga, step and
-- operation that reached this participant. The primary key is the whole
-- mechanism; rows are never updated.

-- +goose Up
CREATE TABLE saga_barrier (
    saga_id     TEXT NOT NULL,
    step        TEXT NOT NULL,
    op          TEXT NOT NULL CHECK (op IN ('action', 'compensate')),
    -- The operation whose call inserted the row: an 'action' row inserted by
    -- 'compensate' marks an action pre-empted by a null compensation.
    inserted_by TEXT NOT NULL CHECK (inserted_by IN ('action', 'compensate')),
    created_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (saga_id, step, op)
);

-- +goose Down
DROP TABLE saga_barrier;
