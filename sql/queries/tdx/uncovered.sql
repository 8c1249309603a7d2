-- Settled actions of one ticket that no summary comment has reported yet, oldest first.
SELECT l.action_id, l.metadata ->> 'summary_line' AS summary_line
FROM meta.daemon_action_log l
WHERE l.ticket_id = %(ticket_id)s
  AND l.status IN ('completed', 'skipped')
  AND l.action_type <> 'summary_comment'
  AND (l.metadata ? 'summary_line' OR NOT %(only_with_lines)s)
  AND NOT EXISTS (SELECT 1 FROM meta.daemon_action_log s
                  WHERE s.ticket_id = l.ticket_id AND s.action_type = 'summary_comment'
                    AND s.metadata -> 'covers' ? l.action_id)
ORDER BY l.executed_at, l.action_id
