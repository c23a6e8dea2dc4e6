-- Products, their stock and reservations of stock for orders.
-- Portable between SQLite and PostgreSQL: TEXT ids, BIGINT quantities and
-- money in minor units, TIMESTAMP in UTC. The CHECK constraints are what
-- makes overselling impossible, whatever the code does (invariant I5).

-- +goose Up
CREATE TABLE products (
    sku         TEXT PRIMARY KEY CHECK (length(sku) BETWEEN 1 AND 64 AND sku = upper(sku)),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    price_minor BIGINT NOT NULL CHECK (price_minor >= 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    image_ref   TEXT NOT NULL DEFAULT ''
);

-- available can be reserved; reserved is held by PENDING reservations.
CREATE TABLE stock (
    sku       TEXT PRIMARY KEY REFERENCES products (sku),
    available BIGINT NOT NULL CHECK (available >= 0),
    reserved  BIGINT NOT NULL CHECK (reserved >= 0)
);

-- One reservation per order: order_id is what makes reserving idempotent.
CREATE TABLE reservations (
    id         TEXT PRIMARY KEY,
    order_id   TEXT NOT NULL UNIQUE,
    status     TEXT NOT NULL CHECK (status IN ('PENDING', 'COMMITTED', 'RELEASED', 'EXPIRED')),
    expires_at TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
-- The expirer's query: PENDING reservations by deadline.
CREATE INDEX reservations_status_expires_at ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations (id),
    sku            TEXT NOT NULL REFERENCES products (sku),
    quantity       BIGINT NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, sku)
);

-- +goose Down
DROP TABLE reservation_lines;
DROP TABLE reservations;
DROP TABLE stock;
DROP TABLE products;
