-- One batch of archived events (event_archive archives completed ones) that
-- ended before the cut-off, in id order after %(after_id)s, with their attendees
-- (ON DELETE CASCADE). Events in any other status stay. The reminders they sent
-- keep a copy of what they said in the outbox (until sent_email's age). Returns
-- the ids deleted and how many attendees went with each.
WITH doomed AS (
    SELECT e.id
    FROM events e
    WHERE e.id > %(after_id)s
      AND e.status = 'archived'
      AND e.end_date < %(cutoff)s
    ORDER BY e.id
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
),
attendees AS (
    SELECT a.event_id, count(*) AS n
    FROM event_attendees a
    JOIN doomed d ON d.id = a.event_id
    GROUP BY a.event_id
)
DELETE FROM events e
USING doomed d
WHERE e.id = d.id
RETURNING e.id, coalesce((SELECT n FROM attendees WHERE event_id = e.id), 0) AS event_attendees
