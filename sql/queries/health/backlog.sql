-- What is waiting: the oldest ticket without a task, emails not yet sent or
-- given up on, TDX actions that failed.
WITH clock AS (SELECT %(now)s::timestamptz AS now)
SELECT (SELECT count(*) FROM tickets
        WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived) AS unallocated_tickets,
       oldest.id AS oldest_ticket_id, oldest.subject AS oldest_ticket_subject,
       oldest.created_at AS oldest_ticket_created_at,
       extract(epoch FROM clock.now - oldest.created_at)::double precision AS oldest_ticket_wait_seconds,
       oldest.allocation_error AS oldest_ticket_error,
       (SELECT count(*) FROM email_outbox WHERE status = 'queued') AS emails_queued,
       (SELECT count(*) FROM email_outbox WHERE status = 'dead') AS emails_dead,
       (SELECT min(queued_at) FROM email_outbox WHERE status = 'queued') AS oldest_email_queued_at,
       (SELECT count(*) FROM meta.daemon_action_log WHERE status = 'failed') AS tdx_failed_actions,
       (SELECT count(DISTINCT ticket_id) FROM meta.daemon_action_log WHERE status = 'failed') AS tdx_failed_tickets,
       (SELECT error_message FROM meta.daemon_action_log WHERE status = 'failed'
        ORDER BY executed_at DESC LIMIT 1) AS tdx_last_error
FROM clock
LEFT JOIN LATERAL (
    SELECT id, subject, created_at, allocation_error FROM tickets
    WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived
    ORDER BY created_at, id LIMIT 1
) AS oldest ON true
