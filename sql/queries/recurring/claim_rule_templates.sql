-- Due templates scheduled by an RRULE, claimed for this batch's transaction
-- (SKIP LOCKED); their occurrences are computed in Python with dateutil.
SELECT t.id, t.recurrence_rule, coalesce(t.recurrence_timezone, %(default_timezone)s) AS tz,
       t.recurrence_start, t.next_occurrence,
       -- 'infinity' (or any end after the anchors' range) means no end, and Python cannot hold it
       CASE WHEN t.recurrence_end < '9000-01-01' THEN t.recurrence_end END AS recurrence_end, t.missed_policy,
       %(due_at)s::timestamptz + t.recurrence_lead_time AS horizon,
       ARRAY(SELECT s.occurrence_at FROM recurring_occurrence_skips s  -- skipped or moved: off the schedule
             WHERE s.template_id = t.id AND s.occurrence_at >= t.next_occurrence) AS taken
FROM tickets t
WHERE t.is_recurring AND NOT t.archived AND t.recurrence_error IS NULL AND t.paused_at IS NULL
  AND t.recurrence_rule IS NOT NULL
  AND t.next_occurrence <= %(due_at)s::timestamptz + %(max_lead_time)s::interval
  AND t.next_occurrence <= %(due_at)s::timestamptz + t.recurrence_lead_time
  AND (t.recurrence_end IS NULL OR t.next_occurrence <= t.recurrence_end)
ORDER BY t.next_occurrence, t.id
LIMIT %(batch_size)s
FOR UPDATE SKIP LOCKED
