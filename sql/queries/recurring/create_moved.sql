-- Tickets for occurrences moved to another instant (recurring_occurrence_skips
-- rows of kind 'moved'), once that instant is due: at or before the run's due
-- instant plus the template's lead time. Only for templates the job schedules
-- (not paused, not parked). The ticket keeps the occurrence it stands for as
-- its occurrence_at, so the tickets' unique key makes a rerun, an overlapping
-- run or a backfill a no-op; its subject carries the date it was moved to.
-- The move row records the ticket (ticket_id), which ends its wait.
-- Returns one row per move handled, `created` when this run made its ticket.
WITH due_moves AS (
    SELECT s.template_id, s.occurrence_at, s.moved_to
    FROM recurring_occurrence_skips s
    JOIN recurring_scheduled_templates t ON t.id = s.template_id
    WHERE s.kind = 'moved' AND s.ticket_id IS NULL
      AND s.moved_to <= %(due_at)s::timestamptz + t.recurrence_lead_time
    ORDER BY s.moved_to, s.template_id
    FOR UPDATE OF s SKIP LOCKED
),
created AS (
    INSERT INTO tickets (subject, description, department, category, sub_category, priority,
                         requester_email, recurring_parent_id, occurrence_at)
    SELECT t.subject || ' (' || to_char(m.moved_to AT TIME ZONE coalesce(t.recurrence_timezone,
                                        %(default_timezone)s), 'YYYY-MM-DD') || ')',
           t.description, t.department, t.category, t.sub_category, t.priority, t.requester_email,
           t.id, m.occurrence_at
    FROM due_moves m
    JOIN tickets t ON t.id = m.template_id
    ORDER BY m.template_id, m.occurrence_at
    ON CONFLICT (recurring_parent_id, occurrence_at) WHERE recurring_parent_id IS NOT NULL DO NOTHING
    RETURNING id, recurring_parent_id, occurrence_at
)
UPDATE recurring_occurrence_skips s
SET ticket_id = coalesce(c.id, (SELECT x.id FROM tickets x
                                WHERE x.recurring_parent_id = m.template_id AND x.occurrence_at = m.occurrence_at))
FROM due_moves m
LEFT JOIN created c ON c.recurring_parent_id = m.template_id AND c.occurrence_at = m.occurrence_at
WHERE s.template_id = m.template_id AND s.occurrence_at = m.occurrence_at
RETURNING s.template_id, c.id IS NOT NULL AS created
