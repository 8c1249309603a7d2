-- Confirmed events that have started by the run's due instant (and not ended:
-- events/complete_ended has taken those) become ongoing.
UPDATE events
SET status = 'ongoing', updated_at = clock_timestamp()
WHERE status = 'confirmed'
  AND start_date <= %(due_at)s
  AND (end_date IS NULL OR end_date >= %(due_at)s)
RETURNING id
