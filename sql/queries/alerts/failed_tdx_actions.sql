-- TDX actions that failed (TDX refused them); open until cleared
-- (tdx_clear_failed_actions) for the queue to try again.
SELECT 'tdx:' || l.log_id AS item_key, 'tdx_ticket_queue' AS dag_id, l.executed_at AS since,
       'TDX ticket ' || l.ticket_id || ': ' || l.action_type || ' ' || l.action_id || ' failed '
           || to_char(l.executed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"') || ': '
           || coalesce(left(l.error_message, 300), 'no error recorded') AS line
FROM meta.daemon_action_log l
WHERE l.status = 'failed' AND l.executed_at <= %(due_at)s::timestamptz
ORDER BY l.executed_at, l.log_id
