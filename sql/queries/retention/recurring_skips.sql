-- One batch of the occurrences recurring_tickets recorded as skipped, recorded
-- before the cut-off, in key order after (%(after_template_id)s, %(after_occurrence_at)s).
-- Duplicates are prevented by the generated tickets' unique (recurring_parent_id,
-- occurrence_at), which retention never touches. A skip matters to the job only
-- from its template's pointer (next_occurrence) on: there it tells a pointer
-- written back to an occurrence already handled from a new one, and after it an
-- occurrence recorded as skipped ahead of time must stay skipped. So a skip at or
-- after the pointer stays whatever its age; one before it is history only (a
-- pointer written back before it, if it ever is, replays at most skips: the
-- tickets' unique key stops a second ticket). A move (kind 'moved') also
-- stays while its ticket is still to be made (ticket_id NULL) or its new
-- instant is at or after the pointer. A series that has ended (no pointer)
-- reads none of its skips. Returns the keys deleted.
WITH doomed AS (
    SELECT s.template_id, s.occurrence_at
    FROM recurring_occurrence_skips s
    JOIN tickets t ON t.id = s.template_id
    WHERE (s.template_id, s.occurrence_at) > (%(after_template_id)s, %(after_occurrence_at)s::timestamptz)
      AND s.skipped_at < %(cutoff)s
      AND s.occurrence_at < coalesce(t.next_occurrence, 'infinity')
      AND NOT (s.kind = 'moved' AND (s.ticket_id IS NULL OR s.moved_to >= coalesce(t.next_occurrence, 'infinity')))
    ORDER BY s.template_id, s.occurrence_at
    LIMIT %(batch_size)s
    FOR UPDATE OF s SKIP LOCKED
)
DELETE FROM recurring_occurrence_skips s
USING doomed d
WHERE s.template_id = d.template_id AND s.occurrence_at = d.occurrence_at
RETURNING s.template_id, s.occurrence_at
