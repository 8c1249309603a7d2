-- The tickets waiting for a task (oldest first), each with its workflow and
-- first step, matched as the seed did: a published, deployed workflow of the
-- same department, category and sub-category, else of the same department and
-- category; the first step by step_order. NULLs say what is missing.
-- %(roles)s (NULL: every role) keeps the tickets of those roles, a NULL in it
-- those without one: each mapped assignment task serves its own roles.
SELECT t.id, w.id AS workflow_id, s.id AS step_id, s.role_name
FROM tickets t
LEFT JOIN LATERAL (
    SELECT w.id FROM workflows w
    WHERE w.is_published AND w.status = 'deployed'
      AND w.department = t.department AND w.category = t.category
    ORDER BY (w.sub_category IS NOT DISTINCT FROM t.sub_category) DESC, w.id
    LIMIT 1
) AS w ON true
LEFT JOIN LATERAL (
    SELECT s.id, s.role_name FROM steps s WHERE s.workflow_id = w.id ORDER BY s.step_order, s.id LIMIT 1
) AS s ON true
WHERE NOT t.is_task_allocated AND NOT t.is_recurring AND NOT t.archived
  AND (t.next_allocation_at IS NULL OR t.next_allocation_at <= clock_timestamp())
  AND (%(ticket_id)s::bigint IS NULL OR t.id = %(ticket_id)s::bigint)
  AND (%(roles)s::text[] IS NULL OR array_position(%(roles)s::text[], s.role_name) IS NOT NULL)
ORDER BY t.created_at, t.id
LIMIT %(limit)s
