-- One event stuck for 45 s among fresh ones: a spike over the 10 s bound.
INSERT INTO "Outbox" (topic, payload, created_at) VALUES
  ('order.created', '{"order":"o-20"}', now() - interval '45 seconds'),
  ('order.created', '{"order":"o-21"}', now() - interval '2 seconds'),
  ('order.created', '{"order":"o-22"}', now() - interval '1 second');
