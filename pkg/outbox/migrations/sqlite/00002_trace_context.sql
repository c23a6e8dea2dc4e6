-- The W3C trace context of the transaction that added the message, so that
-- the relay publishes it in the message's headers and the consumer's span
-- continues the trace. Empty when the transaction ran outside a trace.

-- +goose Up
ALTER TABLE outbox ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE outbox DROP COLUMN tracestate;
ALTER TABLE outbox DROP COLUMN traceparent;
