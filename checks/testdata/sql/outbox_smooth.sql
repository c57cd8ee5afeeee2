-- Pending events a few seconds old: the relay keeps up.
INSERT INTO "Outbox" (topic, payload, created_at) VALUES
  ('order.created', '{"order":"o-10"}', now() - interval '4 seconds'),
  ('order.filled',  '{"order":"o-10"}', now() - interval '3 seconds'),
  ('order.created', '{"order":"o-11"}', now() - interval '1.5 seconds'),
  ('order.created', '{"order":"o-12"}', now() - interval '0.5 seconds');
