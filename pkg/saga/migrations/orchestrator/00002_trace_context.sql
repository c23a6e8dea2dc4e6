-- The W3C trace context of the transaction that started each saga, so that
-- what the orchestrator does later on its own — an action's deadline, a
-- compensation re-sent — continues the saga's trace instead of starting a
-- new one. Empty for a saga started outside a trace.

-- +goose Up
ALTER TABLE saga_instances ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
ALTER TABLE saga_instances ADD COLUMN tracestate TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE saga_instances DROP COLUMN tracestate;
ALTER TABLE saga_instances DROP COLUMN traceparent;
