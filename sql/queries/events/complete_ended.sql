-- Confirmed or ongoing events whose end has passed, as of the run's due instant.
-- Served by the partial index events_live_end: the cost follows the number due.
UPDATE events
SET status = 'completed', updated_at = clock_timestamp()
WHERE status IN ('confirmed', 'ongoing')
  AND end_date < %(due_at)s
RETURNING id
