-- One template's history, newest occurrence first: the tickets it created
-- (a moved occurrence's ticket at the instant it was moved to) and the
-- occurrences skipped or moved, with who and why (who is NULL for the job's
-- own skips, made by its missed policy).
SELECT kind, occurrence, ticket_id, "by", reason, "at"
FROM (
    SELECT 'created' AS kind, coalesce(m.moved_to, c.occurrence_at) AS occurrence, c.id AS ticket_id,
           NULL::text AS "by", NULL::text AS reason, c.created_at AS "at"
    FROM tickets c
    LEFT JOIN recurring_occurrence_skips m
           ON m.template_id = c.recurring_parent_id AND m.occurrence_at = c.occurrence_at AND m.kind = 'moved'
    WHERE c.recurring_parent_id = %(template_id)s
    UNION ALL
    SELECT s.kind, s.occurrence_at, s.ticket_id, s.skipped_by, s.reason, s.skipped_at
    FROM recurring_occurrence_skips s
    WHERE s.template_id = %(template_id)s
) AS entries
ORDER BY occurrence DESC, "at" DESC, kind
LIMIT %(limit)s OFFSET %(offset)s
