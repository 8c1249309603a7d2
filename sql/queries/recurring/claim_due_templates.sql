-- One batch of due templates, claimed for this transaction: up to
-- %(batch_size)s templates the job schedules (recurring_scheduled_templates:
-- live, not paused, not parked) whose next occurrence is due, that is at or
-- before the run's due instant plus the template's lead time, and not past
-- the template's end. SKIP LOCKED: overlapping runs never wait for or take
-- each other's templates. The largest lead time (%(max_lead_time)s) bounds the
-- scan to a range of the tickets_due_templates index.
-- The one claim of the job, for interval and RRULE templates alike. An RRULE
-- template's rows carry what Python needs to compute its occurrences
-- (ticketflow.recurrence); an interval template's are computed in SQL by
-- recurring/plan_batch.sql, which takes the claimed ids.
SELECT t.id, t.recurrence_rule,
       CASE WHEN t.recurrence_rule IS NOT NULL THEN coalesce(t.recurrence_timezone, %(default_timezone)s) END AS tz,
       CASE WHEN t.recurrence_rule IS NOT NULL THEN t.recurrence_start END AS anchor,
       CASE WHEN t.recurrence_rule IS NOT NULL THEN t.next_occurrence END AS pointer,
       CASE WHEN t.recurrence_rule IS NOT NULL THEN %(due_at)s::timestamptz + t.recurrence_lead_time END AS horizon
FROM recurring_scheduled_templates t
WHERE t.next_occurrence <= %(due_at)s::timestamptz + %(max_lead_time)s::interval
  AND t.next_occurrence <= %(due_at)s::timestamptz + t.recurrence_lead_time
  AND (t.recurrence_end IS NULL OR t.next_occurrence <= t.recurrence_end)
ORDER BY t.next_occurrence, t.id
LIMIT %(batch_size)s
FOR UPDATE SKIP LOCKED
