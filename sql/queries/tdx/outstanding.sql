-- The tickets of a report that still have work: a wanted (ticket, action id)
-- with no settled row, a row left pending by an interrupted run (even for a
-- ticket no longer in the report), or settled
-- actions not yet reported in a summary comment (when the queue posts one).
-- One statement for the whole report: a steady-state run costs this and the
-- report call, nothing per ticket.
WITH wanted (ticket_id, action_id) AS (
    SELECT * FROM unnest(%(ticket_ids)s::integer[], %(action_ids)s::text[])
)
SELECT w.ticket_id
FROM wanted w
LEFT JOIN meta.daemon_action_log l USING (ticket_id, action_id)
WHERE l.status IS NULL
UNION
SELECT l.ticket_id
FROM meta.daemon_action_log l
WHERE l.status = 'pending'  -- wherever its ticket is now, even out of the report
   OR (l.ticket_id = ANY (%(report_ticket_ids)s::integer[])
       AND (%(summarize)s
           AND l.status IN ('completed', 'skipped')
           AND l.action_type <> 'summary_comment'
           AND (l.metadata ? 'summary_line' OR NOT %(summary_only_with_lines)s)
           AND NOT EXISTS (SELECT 1 FROM meta.daemon_action_log s
                           WHERE s.ticket_id = l.ticket_id AND s.action_type = 'summary_comment'
                             AND s.metadata -> 'covers' ? l.action_id)))
ORDER BY 1
