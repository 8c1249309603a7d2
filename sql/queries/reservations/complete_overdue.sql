-- Confirmed reservations whose start is at least the grace period before the
-- run's due instant (the period in seconds: exact, whatever the session's time zone).
-- Served by the partial index reservations_confirmed_start.
UPDATE reservations
SET status = 'completed'
WHERE status = 'confirmed'
  AND start_time <= %(due_at)s::timestamptz - make_interval(secs => %(grace_seconds)s)
RETURNING id
