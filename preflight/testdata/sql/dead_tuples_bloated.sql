-- 5000 orders, 4000 deleted and autovacuum off for the table: 80 % dead.
CREATE TABLE orders (id int PRIMARY KEY, symbol text NOT NULL) WITH (autovacuum_enabled = false);
INSERT INTO orders SELECT g, 'BTCUSDT' FROM generate_series(1, 5000) g;
DELETE FROM orders WHERE id <= 4000;
CREATE TABLE prices (id int PRIMARY KEY) WITH (autovacuum_enabled = false);
INSERT INTO prices SELECT g FROM generate_series(1, 10) g;
