-- Head of the per-batch statement for templates scheduled by interval (no RRULE).
-- Claims up to %(batch_size)s due templates (SKIP LOCKED: overlapping runs never
-- wait for or take each other's templates) and plans, in SQL, which
-- occurrences to create or skip and where each template's pointer moves.
-- A pointer set by hand (not the one the job last wrote) to an instant off the
-- series restarts the series there: the seed's users reschedule by editing
-- next_occurrence. One on the series (skipping ahead) only moves the pointer;
-- one the job already handled (an old pointer written back by a stale save:
-- its ticket or skip exists) changes nothing; nor does anything else: an edit
-- of another schedule column, a tz database update, a new default zone.
-- Completed by recurring/apply_plan.sql, which reads claimed, plan and advance.
WITH locked AS (
    SELECT t.id, t.recurrence_start, t.next_occurrence, t.job_next_occurrence,
           coalesce(t.recurrence_timezone, %(default_timezone)s) AS tz,
           t.recurrence_interval AS unit,
           t.recurrence_every AS every,
           t.recurrence_end,
           t.missed_policy,
           %(due_at)s::timestamptz + t.recurrence_lead_time AS horizon,
           CASE WHEN t.next_occurrence = t.job_next_occurrence THEN 'job'
                WHEN EXISTS (SELECT 1 FROM tickets c
                             WHERE c.recurring_parent_id = t.id AND c.occurrence_at = t.next_occurrence)
                  OR EXISTS (SELECT 1 FROM recurring_occurrence_skips s
                             WHERE s.template_id = t.id AND s.occurrence_at = t.next_occurrence) THEN 'handled'
                WHEN EXISTS (
                    SELECT 1
                    FROM ticketflow_interval_occurrences(t.recurrence_start,
                                                         coalesce(t.recurrence_timezone, %(default_timezone)s),
                                                         t.recurrence_interval, t.recurrence_every,
                                                         t.next_occurrence, t.next_occurrence) AS o
                    WHERE o.occurrence_at = t.next_occurrence) THEN 'on_schedule'
                ELSE 'moved' END AS pointer_kind
    FROM tickets t
    WHERE t.is_recurring AND NOT t.archived AND t.recurrence_error IS NULL AND t.paused_at IS NULL
      AND t.recurrence_rule IS NULL
      AND t.next_occurrence <= %(due_at)s::timestamptz + %(max_lead_time)s::interval
      AND t.next_occurrence <= %(due_at)s::timestamptz + t.recurrence_lead_time
      AND (t.recurrence_end IS NULL OR t.next_occurrence <= t.recurrence_end)
    ORDER BY t.next_occurrence, t.id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
),
claimed AS (
    -- A written-back pointer resumes where the job was, so nothing is replayed.
    SELECT id,
           CASE WHEN pointer_kind = 'moved' THEN next_occurrence ELSE recurrence_start END AS anchor,
           recurrence_start AS previous_anchor,
           CASE WHEN pointer_kind = 'handled' THEN greatest(next_occurrence, job_next_occurrence)
                ELSE next_occurrence END AS pointer,
           tz, unit, every, recurrence_end, missed_policy, horizon
    FROM locked
),
occurrences AS (
    SELECT c.id, c.missed_policy, c.pointer, c.horizon, c.recurrence_end, o.occurrence_at
    FROM claimed c
    CROSS JOIN LATERAL ticketflow_interval_occurrences(c.anchor, c.tz, c.unit, c.every, c.pointer, c.horizon) AS o
    WHERE c.anchor >= '1900-01-01'  -- a series restarted at a pointer typed centuries back is parked below
),
due AS (
    -- "Missed" occurrences are those at or before the due instant; later ones
    -- (within the lead time) are simply early and always created.
    SELECT id, missed_policy, occurrence_at,
           max(occurrence_at) FILTER (WHERE occurrence_at <= %(due_at)s::timestamptz)
               OVER (PARTITION BY id) AS latest_missed,
           count(*) OVER (PARTITION BY id) AS due_count
    FROM occurrences o
    WHERE occurrence_at BETWEEN pointer AND horizon
      AND (recurrence_end IS NULL OR occurrence_at <= recurrence_end)
      AND NOT EXISTS (SELECT 1 FROM recurring_occurrence_skips s  -- skipped or moved: not on the schedule
                      WHERE s.template_id = o.id AND s.occurrence_at = o.occurrence_at)
),
plan AS (
    SELECT id AS template_id, occurrence_at,
           missed_policy = 'create_all' OR occurrence_at > %(due_at)s::timestamptz
               OR occurrence_at = latest_missed AS create_it
    FROM due
    WHERE due_count <= %(max_occurrences)s
),
advance AS (
    -- A template with more occurrences due at once than the cap (a start date
    -- decades off, say) is parked with the reason instead, as RRULE ones are.
    SELECT c.id AS template_id, following.next_occurrence,
           CASE WHEN c.anchor < '1900-01-01' OR (flooded.id IS NOT NULL AND c.anchor <> c.previous_anchor)
                THEN %(too_many_from_pointer)s
                WHEN flooded.id IS NOT NULL THEN %(too_many_occurrences)s END AS recurrence_error,
           CASE WHEN c.anchor <> c.previous_anchor THEN c.anchor END AS new_anchor
    FROM claimed c
    LEFT JOIN (SELECT id, min(occurrence_at) AS next_occurrence
               FROM occurrences WHERE occurrence_at > horizon GROUP BY id) AS following ON following.id = c.id
    LEFT JOIN (SELECT DISTINCT id FROM due WHERE due_count > %(max_occurrences)s) AS flooded ON flooded.id = c.id
)
