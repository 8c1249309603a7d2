-- The outbox is not sending: queued messages more than the allowed delay past
-- their send time (SMTP unreachable, or the notifications DAG not running).
-- One row for the whole outbox, with what the last notifications run said.
SELECT 'outbox' AS item_key, 'notifications' AS dag_id, min(o.next_attempt_at) AS since,
       count(*) || ' queued message(s) more than ' || round(%(stalled_seconds)s::numeric / 60)
           || ' minutes past their send time, the oldest due since '
           || to_char(min(o.next_attempt_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
           || '; the last notifications run: '
           || coalesce((SELECT CASE WHEN r.status = 'error' THEN 'failed: ' || coalesce(left(r.error, 300), '')
                                    ELSE r.status || ', started '
                                         || to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"') END
                        FROM automation_runs r
                        WHERE r.dag_id = 'notifications' AND r.started_at <= %(due_at)s::timestamptz
                        ORDER BY r.started_at DESC LIMIT 1), 'none yet') AS line
FROM email_outbox o
WHERE o.status = 'queued'
  AND o.next_attempt_at <= %(due_at)s::timestamptz - make_interval(secs => %(stalled_seconds)s)
HAVING count(*) > 0
