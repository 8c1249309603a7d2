-- Messages parked as dead after their last attempt; open until re-queued
-- (email_requeue) or deleted.
SELECT 'email:' || o.id AS item_key, 'notifications' AS dag_id, o.queued_at AS since,
       'Email #' || o.id || ' (' || o.template || ') to ' || coalesce(o.recipient, 'the admin address')
           || ', queued ' || to_char(o.queued_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')
           || ', dead after ' || o.attempts || ' attempts: '
           || coalesce(left(o.last_error, 300), 'no error recorded') AS line
FROM email_outbox o
WHERE o.status = 'dead' AND o.queued_at <= %(due_at)s::timestamptz
ORDER BY o.queued_at, o.id
