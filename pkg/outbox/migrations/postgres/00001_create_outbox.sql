-- The outbox: messages written in a service's business transactions, waiting
-- for the relay to publish them to Kafka. See package outbox.
--
-- seq orders the messages: the relay publishes the messages of one key in seq
-- order. An identity column only grows: pruning never makes a value come back.

-- +goose Up
CREATE TABLE outbox (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE CHECK (id <> ''),
    topic      TEXT NOT NULL CHECK (topic <> ''),
    key        TEXT NOT NULL CHECK (key <> ''),
    headers    TEXT NOT NULL, -- JSON object of the extra Kafka headers
    payload    BYTEA NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sent_at    TIMESTAMP      -- NULL until the broker acknowledged the message
);
-- The relay's round: pending messages in seq order ...
CREATE INDEX outbox_pending_seq ON outbox (seq) WHERE sent_at IS NULL;
-- ... that are the oldest pending message of their key.
CREATE INDEX outbox_pending_key_seq ON outbox (key, seq) WHERE sent_at IS NULL;
-- Pruning of messages sent long ago.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- +goose Down
DROP TABLE outbox;
