-- Payments and refunds. Each carries the idempotency key it is sent to the
-- payment provider (PSP) with, unique, so a retried command can never charge
-- or refund twice (invariant I4). Rows are written PENDING before the PSP is
-- called and settled by conditional UPDATEs (... WHERE status = 'PENDING').
-- Card numbers are never stored.
-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT money in minor
-- units, TIMESTAMP in UTC.

-- +goose Up
CREATE TABLE payments (
    id              TEXT PRIMARY KEY,
    order_id        TEXT NOT NULL,
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    -- refunded_minor is the sum of the payment's PENDING and SUCCEEDED
    -- refunds: reserved when a refund is created, given back if it fails.
    -- The CHECK makes over-refunding impossible whatever the code does.
    refunded_minor  BIGINT NOT NULL DEFAULT 0 CHECK (refunded_minor >= 0 AND refunded_minor <= amount_minor),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'CAPTURED', 'FAILED')),
    psp_reference   TEXT NOT NULL DEFAULT '',
    failure_reason  TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    CHECK (status <> 'CAPTURED' OR psp_reference <> ''),
    CHECK (status = 'CAPTURED' OR refunded_minor = 0)
);
CREATE INDEX payments_by_order ON payments (order_id, id);

CREATE TABLE refunds (
    id              TEXT PRIMARY KEY,
    payment_id      TEXT NOT NULL REFERENCES payments (id),
    amount_minor    BIGINT NOT NULL CHECK (amount_minor > 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'SUCCEEDED', 'FAILED')),
    psp_reference   TEXT NOT NULL DEFAULT '',
    failure_reason  TEXT NOT NULL DEFAULT '',
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    CHECK (status <> 'SUCCEEDED' OR psp_reference <> '')
);
CREATE INDEX refunds_by_payment ON refunds (payment_id, id);

-- +goose Down
DROP TABLE refunds;
DROP TABLE payments;
