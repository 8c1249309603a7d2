-- Head of the per-batch statement for a plan computed in Python (RRULE
-- templates), passed as parallel arrays. The templates are already locked by
-- recurring/claim_rule_templates.sql in the same transaction.
-- Completed by recurring/apply_plan.sql, which reads claimed, plan and advance.
WITH claimed AS (
    SELECT id FROM unnest(%(template_ids)s::bigint[]) AS id
),
plan AS (
    SELECT * FROM unnest(%(plan_template_ids)s::bigint[], %(plan_occurrences)s::timestamptz[],
                         %(plan_create)s::boolean[]) AS p (template_id, occurrence_at, create_it)
    WHERE NOT EXISTS (SELECT 1 FROM recurring_occurrence_skips s
                      WHERE s.template_id = p.template_id AND s.occurrence_at = p.occurrence_at)
),
advance AS (  -- an RRULE's anchor is its DTSTART, moved only by editing recurrence_start
    SELECT a.*, NULL::timestamptz AS new_anchor
    FROM unnest(%(template_ids)s::bigint[], %(next_occurrences)s::timestamptz[],
                %(errors)s::text[]) AS a (template_id, next_occurrence, recurrence_error)
)
