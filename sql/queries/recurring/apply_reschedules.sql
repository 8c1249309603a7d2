-- The recurring job's consumption of reschedule_at, the documented way to
-- reschedule a template's series (the API's reschedule action writes it too):
-- the instant becomes the series' start (its anchor) and next occurrence, and
-- is cleared. Run at the start of every recurring_tickets run, for every
-- template (%(template_ids)s NULL), and by the API for the one it reschedules.
-- Idempotent: a template without reschedule_at is not touched. Run as the job
-- (ticketflow.recurring.as_the_job): it moves the pointer.
UPDATE tickets t
SET recurrence_start = t.reschedule_at,
    next_occurrence = t.reschedule_at,
    reschedule_at = NULL,
    recurrence_error = NULL,
    updated_at = clock_timestamp()
WHERE t.reschedule_at IS NOT NULL AND t.is_recurring AND NOT t.archived
  AND (%(template_ids)s::bigint[] IS NULL OR t.id = ANY (%(template_ids)s::bigint[]))
RETURNING t.id
