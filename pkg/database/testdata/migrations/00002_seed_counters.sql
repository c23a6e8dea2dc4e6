-- +goose Up
INSERT INTO counters (name, value) VALUES ('hits', 0);

-- +goose Down
DELETE FROM counters WHERE name = 'hits';
