-- A writer whose clock runs 30 s ahead: an event dated in the future.
INSERT INTO "Outbox" (topic, payload, created_at) VALUES
  ('order.created', '{"order":"o-30"}', now() - interval '2 seconds'),
  ('order.created', '{"order":"o-31"}', now() + interval '30 seconds');
