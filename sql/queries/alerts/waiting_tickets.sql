-- Tickets still without a task longer than allowed after they were created,
-- as of the instant, with the reason assignment gave when it has one.
SELECT 'ticket:' || t.id AS item_key, 'ticket_task_assignment' AS dag_id, t.created_at AS since,
       'Ticket #' || t.id || ' "' || left(t.subject, 120) || '" (' || t.department || ' / ' || t.category
           || ') waiting for a task since '
           || to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
           || coalesce(': ' || left(t.allocation_error, 300), '') AS line
FROM tickets t
WHERE NOT t.is_task_allocated AND NOT t.is_recurring AND NOT t.archived
  AND t.created_at <= %(due_at)s::timestamptz - make_interval(secs => %(waiting_seconds)s)
ORDER BY t.created_at, t.id
