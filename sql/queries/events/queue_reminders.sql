-- A reminder for every attendee of a confirmed event that starts within the
-- reminder period after the run's due instant. The deduplication key makes it
-- once per attendee, event and start, however often the DAG runs or is rerun: an
-- event moved after its reminder went out reminds again for the new date. The period
-- is in seconds: an exact duration, whatever the session's time zone and its DST.
INSERT INTO email_outbox (dedup_key, template, recipient, context)
SELECT 'event:' || e.id || ':reminder:' || c.id || ':'
           || to_char(e.start_date AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"'),
       'event_reminder',
       c.email,
       jsonb_build_object('event_id', e.id, 'title', e.title, 'start_time', e.start_date,
                          'customer_name', CASE WHEN c.first_name <> '' THEN btrim(c.first_name || ' ' || c.last_name)
                                                ELSE c.username END)
FROM events e
JOIN event_attendees a ON a.event_id = e.id
JOIN customers c ON c.id = a.customer_id
WHERE e.status = 'confirmed'
  AND e.start_date > %(due_at)s
  AND e.start_date <= %(due_at)s::timestamptz + make_interval(secs => %(remind_before_seconds)s)
ON CONFLICT (dedup_key) DO NOTHING
