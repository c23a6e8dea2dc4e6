-- Run once by PostgreSQL's image on an empty data directory
-- (/docker-entrypoint-initdb.d): a user and a database per service, each
-- service owning its own and reaching no other. The passwords are the demo's;
-- docker-compose.yaml gives each service its DATABASE_URL.
CREATE USER "order" WITH PASSWORD 'order';
CREATE DATABASE orderdb OWNER "order";
CREATE USER inventory WITH PASSWORD 'inventory';
CREATE DATABASE inventorydb OWNER inventory;
CREATE USER payment WITH PASSWORD 'payment';
CREATE DATABASE paymentdb OWNER payment;
REVOKE CONNECT ON DATABASE orderdb, inventorydb, paymentdb FROM PUBLIC;
