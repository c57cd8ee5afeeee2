-- 5000 orders, 100 deleted: 100 dead tuples, under the 1000 that count.
CREATE TABLE orders (id int PRIMARY KEY, symbol text NOT NULL) WITH (autovacuum_enabled = false);
INSERT INTO orders SELECT g, 'BTCUSDT' FROM generate_series(1, 5000) g;
DELETE FROM orders WHERE id <= 100;
