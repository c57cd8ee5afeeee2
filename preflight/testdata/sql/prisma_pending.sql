-- On top of prisma_table.sql: a migrate deploy that died half-way, and a
-- failed migration marked as rolled back with `prisma migrate resolve`.
INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count) VALUES
  ('0b1c4f0e-0000-4000-8000-000000000003', 'a3', NULL, '20250301100000_outbox_status_index', NULL, NULL, '2025-03-01 10:00:00+00', 0),
  ('0b1c4f0e-0000-4000-8000-000000000004', 'a4', NULL, '20250228120000_drop_legacy_orders', 'ERROR: cannot drop table', '2025-02-28 12:05:00+00', '2025-02-28 12:00:00+00', 0);
