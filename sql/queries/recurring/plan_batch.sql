-- One batch of the recurring job, for the templates recurring/claim_due_templates.sql
-- has just locked in this transaction (%(template_ids)s): which occurrences to
-- create, which to record as skipped, and where each pointer moves, written in
-- one statement and so in one transaction.
--
-- Candidates: an interval template's occurrences around [pointer, horizon]
-- come from ticketflow_interval_occurrences (in SQL); an RRULE template's come
-- from Python (ticketflow.recurrence) as %(rule_template_ids)s /
-- %(rule_occurrences)s, those from its pointer up to the first after the
-- horizon (stopping early past the cap), and its errors as %(error_ids)s /
-- %(errors)s. Everything after that is decided here, for both alike:
--
-- * due: candidates from the pointer to the horizon (the due instant plus the
--   lead time) and not after the template's end, without the occurrences
--   skipped or moved (recurring_occurrence_skips: an EXDATE);
-- * the missed-occurrence decision: occurrences at or before the due instant
--   are missed; latest_only creates only the newest missed one and records the
--   others as skipped; later ones (within the lead time) are early, always
--   created; create_all creates every one;
-- * the cap: a template with more than %(max_occurrences)s due at once (a
--   start decades off) is parked with %(too_many_occurrences)s, nothing made;
-- * the pointer: the first candidate after the horizon (NULL: the series has
--   ended); a template that cannot be scheduled keeps its pointer and is parked.
--
-- The unique key (recurring_parent_id, occurrence_at) makes a retry, an
-- overlapping run or a backfill a no-op for occurrences that already exist.
WITH claimed AS (
    SELECT t.id, t.recurrence_start AS anchor, t.next_occurrence AS pointer,
           coalesce(t.recurrence_timezone, %(default_timezone)s) AS tz,
           t.recurrence_interval AS unit, t.recurrence_every AS every, t.recurrence_rule IS NOT NULL AS by_rule,
           t.recurrence_end, t.missed_policy,
           %(due_at)s::timestamptz + t.recurrence_lead_time AS horizon
    FROM tickets t
    WHERE t.id = ANY (%(template_ids)s::bigint[])
),
candidates AS (
    SELECT c.id, o.occurrence_at
    FROM claimed c
    CROSS JOIN LATERAL ticketflow_interval_occurrences(c.anchor, c.tz, c.unit, c.every, c.pointer, c.horizon) AS o
    WHERE NOT c.by_rule
    UNION ALL
    SELECT r.id, r.occurrence_at
    FROM unnest(%(rule_template_ids)s::bigint[], %(rule_occurrences)s::timestamptz[]) AS r (id, occurrence_at)
),
windowed AS (
    SELECT c.id, c.missed_policy, k.occurrence_at, k.occurrence_at > c.horizon AS after_horizon
    FROM candidates k
    JOIN claimed c ON c.id = k.id
    WHERE k.occurrence_at >= c.pointer
),
due AS (
    SELECT w.id, w.missed_policy, w.occurrence_at,
           max(w.occurrence_at) FILTER (WHERE w.occurrence_at <= %(due_at)s::timestamptz)
               OVER (PARTITION BY w.id) AS latest_missed,
           count(*) OVER (PARTITION BY w.id) AS due_count
    FROM windowed w
    JOIN claimed c ON c.id = w.id
    WHERE NOT w.after_horizon
      AND (c.recurrence_end IS NULL OR w.occurrence_at <= c.recurrence_end)
      AND NOT EXISTS (SELECT 1 FROM recurring_occurrence_skips s
                      WHERE s.template_id = w.id AND s.occurrence_at = w.occurrence_at)
),
plan AS (
    SELECT id AS template_id, occurrence_at,
           missed_policy = 'create_all' OR occurrence_at > %(due_at)s::timestamptz
               OR occurrence_at = latest_missed AS create_it
    FROM due
    WHERE due_count <= %(max_occurrences)s
),
advance AS (
    SELECT c.id AS template_id, following.next_occurrence,
           coalesce(e.error, CASE WHEN flooded.id IS NOT NULL THEN %(too_many_occurrences)s END) AS recurrence_error
    FROM claimed c
    LEFT JOIN (SELECT id, min(occurrence_at) AS next_occurrence FROM windowed WHERE after_horizon GROUP BY id)
        AS following ON following.id = c.id
    LEFT JOIN (SELECT DISTINCT id FROM due WHERE due_count > %(max_occurrences)s) AS flooded ON flooded.id = c.id
    LEFT JOIN unnest(%(error_ids)s::bigint[], %(errors)s::text[]) AS e (id, error) ON e.id = c.id
),
created AS (
    INSERT INTO tickets (subject, description, department, category, sub_category, priority,
                         requester_email, recurring_parent_id, occurrence_at)
    SELECT t.subject || ' (' || to_char(p.occurrence_at AT TIME ZONE c.tz, 'YYYY-MM-DD') || ')',
           t.description, t.department, t.category, t.sub_category, t.priority, t.requester_email,
           t.id, p.occurrence_at
    FROM plan p
    JOIN claimed c ON c.id = p.template_id
    JOIN tickets t ON t.id = p.template_id
    WHERE p.create_it
      AND t.id = ANY (%(template_ids)s::bigint[])  -- by primary key, not a scan of every ticket
    ORDER BY p.template_id, p.occurrence_at
    ON CONFLICT (recurring_parent_id, occurrence_at) WHERE recurring_parent_id IS NOT NULL DO NOTHING
    RETURNING id
),
skipped AS (
    INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, run_id, reason)
    SELECT p.template_id, p.occurrence_at, %(run_id)s, 'missed_policy latest_only: a newer occurrence was due'
    FROM plan p
    WHERE NOT p.create_it
      AND NOT EXISTS (SELECT 1 FROM tickets x  -- its ticket exists: not skipped, just already made
                      WHERE x.recurring_parent_id = p.template_id AND x.occurrence_at = p.occurrence_at)
    ON CONFLICT (template_id, occurrence_at) DO NOTHING
    RETURNING 1
),
advanced AS (
    UPDATE tickets t
    SET next_occurrence = CASE WHEN a.recurrence_error IS NULL THEN a.next_occurrence ELSE t.next_occurrence END,
        recurrence_error = a.recurrence_error,
        updated_at = clock_timestamp()
    FROM advance a
    WHERE t.id = a.template_id
      AND t.id = ANY (%(template_ids)s::bigint[])  -- reach the rows by primary key
    RETURNING t.id
)
SELECT (SELECT count(*) FROM claimed) AS claimed,
       (SELECT count(*) FROM created) AS created,
       (SELECT count(*) FROM skipped) AS skipped,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('template_id', template_id, 'reason', recurrence_error)
                                  ORDER BY template_id), '[]')
        FROM advance WHERE recurrence_error IS NOT NULL) AS parked
