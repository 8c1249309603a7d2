-- Completed events that ended more than the retention period before the run's
-- due instant become archived (the period in seconds: exact, whatever the session's
-- time zone). Served by the partial index events_completed_end.
UPDATE events
SET status = 'archived', updated_at = clock_timestamp()
WHERE status = 'completed'
  AND end_date < %(due_at)s::timestamptz - make_interval(secs => %(archive_after_seconds)s)
RETURNING id
