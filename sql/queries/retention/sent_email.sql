-- One batch of the outbox's sent messages, sent before the cut-off, in id order
-- after %(after_id)s. Queued messages stay (they have not gone yet), and so do
-- dead ones (they wait for an operator: email_requeue). A reminder of an event
-- that has not started by the run's due instant stays too: its deduplication key
-- is what stops event_lifecycle from queueing it a second time. Every other key
-- names a change that cannot happen again (a reservation created, confirmed or
-- cancelled; a task completed). Returns the ids deleted.
WITH doomed AS (
    SELECT o.id
    FROM email_outbox o
    WHERE o.id > %(after_id)s
      AND o.status = 'sent'
      AND o.sent_at < %(cutoff)s
      AND NOT (o.template = 'event_reminder'
               AND (o.context ->> 'start_time')::timestamptz > %(due_at)s)
    ORDER BY o.id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
DELETE FROM email_outbox o
USING doomed d
WHERE o.id = d.id
RETURNING o.id
