-- Tail of the per-batch statement: creates the planned occurrences, records the
-- skipped ones and moves each template's pointer (and the anchor of a series
-- moved by hand), all in one statement and so
-- in one transaction. The unique key (recurring_parent_id, occurrence_at)
-- makes a retry, an overlapping run or a backfill a no-op for occurrences that
-- already exist.
, created AS (
    INSERT INTO tickets (subject, description, department, category, sub_category, priority,
                         requester_email, recurring_parent_id, occurrence_at)
    SELECT t.subject || ' (' || to_char(p.occurrence_at AT TIME ZONE coalesce(t.recurrence_timezone,
                                        %(default_timezone)s), 'YYYY-MM-DD') || ')',
           t.description, t.department, t.category, t.sub_category, t.priority, t.requester_email,
           t.id, p.occurrence_at
    FROM plan p
    JOIN tickets t ON t.id = p.template_id
    WHERE p.create_it
      AND t.id = ANY (ARRAY(SELECT id FROM claimed))  -- by primary key, not a scan of every ticket
    ORDER BY p.template_id, p.occurrence_at
    ON CONFLICT (recurring_parent_id, occurrence_at) WHERE recurring_parent_id IS NOT NULL DO NOTHING
    RETURNING id
),
skipped AS (
    INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, run_id, reason)
    SELECT p.template_id, p.occurrence_at, %(run_id)s, 'missed_policy latest_only: a newer occurrence was due'
    FROM plan p
    WHERE NOT p.create_it
    ON CONFLICT (template_id, occurrence_at) DO NOTHING
    RETURNING 1
),
advanced AS (
    UPDATE tickets t
    SET next_occurrence = CASE WHEN a.recurrence_error IS NULL THEN a.next_occurrence ELSE t.next_occurrence END,
        job_next_occurrence = CASE WHEN a.recurrence_error IS NULL THEN a.next_occurrence
                                   ELSE t.job_next_occurrence END,
        recurrence_start = CASE WHEN a.recurrence_error IS NULL THEN coalesce(a.new_anchor, t.recurrence_start)
                                ELSE t.recurrence_start END,
        recurrence_error = a.recurrence_error,
        updated_at = clock_timestamp()
    FROM advance a
    WHERE t.id = a.template_id
      AND t.id = ANY (ARRAY(SELECT template_id FROM advance))  -- reach the rows by primary key
    RETURNING t.id
)
SELECT (SELECT count(*) FROM claimed) AS claimed,
       (SELECT count(*) FROM created) AS created,
       (SELECT count(*) FROM skipped) AS skipped,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('template_id', template_id, 'reason', recurrence_error)
                                  ORDER BY template_id), '[]')
        FROM advance WHERE recurrence_error IS NOT NULL) AS parked,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('template_id', template_id, 'anchor', new_anchor)
                                  ORDER BY template_id), '[]')
        FROM advance WHERE new_anchor IS NOT NULL AND recurrence_error IS NULL) AS moved
