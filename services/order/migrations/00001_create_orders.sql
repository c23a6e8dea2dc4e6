-- Orders, their lines and their status history.
-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT money in minor
-- units, TIMESTAMP in UTC, no engine-specific types.

-- +goose Up
CREATE TABLE orders (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL CHECK (length(customer_id) > 0),
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    total_minor     BIGINT NOT NULL CHECK (total_minor >= 0),
    currency        TEXT NOT NULL CHECK (length(currency) = 3),
    cancel_reason   TEXT NOT NULL DEFAULT '',
    -- The client's Idempotency-Key and a hash of what it asked for: a retry
    -- with the same key finds this order instead of creating another.
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    request_hash    TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    updated_at      TIMESTAMP NOT NULL,
    UNIQUE (customer_id, idempotency_key)
);
-- A customer's orders, newest first: the keyset pagination of GET /v1/orders.
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC, id DESC);

-- Lines never change once the order is placed; unit prices share the
-- order's currency.
CREATE TABLE order_lines (
    order_id         TEXT NOT NULL REFERENCES orders (id),
    line_no          INTEGER NOT NULL CHECK (line_no >= 0),
    sku              TEXT NOT NULL,
    quantity         BIGINT NOT NULL CHECK (quantity > 0),
    unit_price_minor BIGINT NOT NULL CHECK (unit_price_minor >= 0),
    PRIMARY KEY (order_id, line_no),
    UNIQUE (order_id, sku)
);

-- Append-only: one row per status an order has been in, in order.
CREATE TABLE order_status_history (
    order_id TEXT NOT NULL REFERENCES orders (id),
    seq      INTEGER NOT NULL CHECK (seq >= 0),
    status   TEXT NOT NULL CHECK (status IN ('PENDING', 'CONFIRMED', 'CANCELLED')),
    reason   TEXT NOT NULL DEFAULT '',
    at       TIMESTAMP NOT NULL,
    PRIMARY KEY (order_id, seq)
);

-- +goose Down
DROP TABLE order_status_history;
DROP TABLE order_lines;
DROP TABLE orders;
