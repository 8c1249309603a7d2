-- One batch of the occurrences recurring_tickets recorded as skipped
-- (missed_policy latest_only), recorded before the cut-off, in key order after
-- (%(after_template_id)s, %(after_occurrence_at)s). Duplicates are prevented by the
-- generated tickets' unique (recurring_parent_id, occurrence_at), which retention
-- never touches; a skip is read by the job only at its template's pointer, where
-- it says the pointer was written back to an occurrence already handled and must
-- not restart the series. So a skip at or after the template's pointer, or the
-- pointer the job last wrote, stays whatever its age (and so does one an operator
-- records ahead of time); one before both is history only. A series that has
-- ended (no pointer) reads none of its skips. Returns the keys deleted.
WITH doomed AS (
    SELECT s.template_id, s.occurrence_at
    FROM recurring_occurrence_skips s
    JOIN tickets t ON t.id = s.template_id
    WHERE (s.template_id, s.occurrence_at) > (%(after_template_id)s, %(after_occurrence_at)s::timestamptz)
      AND s.skipped_at < %(cutoff)s
      AND s.occurrence_at < coalesce(least(t.next_occurrence, t.job_next_occurrence), 'infinity')
    ORDER BY s.template_id, s.occurrence_at
    LIMIT %(batch_size)s
    FOR UPDATE OF s SKIP LOCKED
)
DELETE FROM recurring_occurrence_skips s
USING doomed d
WHERE s.template_id = d.template_id AND s.occurrence_at = d.occurrence_at
RETURNING s.template_id, s.occurrence_at
