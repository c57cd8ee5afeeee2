-- Prisma's own DDL for its migration table (prisma-engines, postgres).
CREATE TABLE "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count) VALUES
  ('0b1c4f0e-0000-4000-8000-000000000001', 'a1', '2025-01-10 09:00:01+00', '20250110090000_init', '2025-01-10 09:00:00+00', 1),
  ('0b1c4f0e-0000-4000-8000-000000000002', 'a2', '2025-02-03 14:30:02+00', '20250203143000_orders_idempotency_key', '2025-02-03 14:30:00+00', 1);
