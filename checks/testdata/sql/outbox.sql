-- The runbook's outbox table (Prisma model "Outbox"), with delivered and
-- failed events that the lag query must not read.
CREATE TABLE "Outbox" (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    payload     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'pending',
    created_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO "Outbox" (topic, payload, status, created_at) VALUES
  ('order.created', '{"order":"o-1"}', 'delivered', now() - interval '2 hours'),
  ('order.created', '{"order":"o-2"}', 'failed', now() - interval '30 minutes');
