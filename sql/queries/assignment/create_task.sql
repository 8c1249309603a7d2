-- The task for one ticket, and the ticket marked allocated: in the caller's
-- transaction with the rotation's advance. One task per ticket (unique key).
WITH task AS (
    INSERT INTO tasks (ticket_id, workflow_id, current_step_id, users, status)
    VALUES (%(ticket_id)s, %(workflow_id)s, %(step_id)s,
            (SELECT coalesce(jsonb_agg(jsonb_build_object(
                        'userID', u, 'status', 'assigned', 'role', %(role)s::text,
                        'assigned_on', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                    ORDER BY ord), '[]')
             FROM unnest(%(users)s::bigint[]) WITH ORDINALITY AS a (u, ord)),
            'pending')
    ON CONFLICT (ticket_id) DO NOTHING
    RETURNING task_id
)
UPDATE tickets
SET is_task_allocated = true, allocation_error = NULL, next_allocation_at = NULL, updated_at = clock_timestamp()
WHERE id = %(ticket_id)s
RETURNING (SELECT task_id FROM task)
