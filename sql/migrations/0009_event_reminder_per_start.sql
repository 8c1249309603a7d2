-- An event reminder is once per attendee and start: an event moved after its
-- reminder went out reminds again for the new date. The reminders' deduplication
-- key gains the start it was for (UTC, ISO 8601 basic), and the keys already in
-- the outbox are rewritten from their own context, so no reminder goes twice.
-- depends: 0008_inline_occurrence_arithmetic

UPDATE email_outbox
SET dedup_key = dedup_key || ':'
                || to_char((context ->> 'start_time')::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD"T"HH24MISS"Z"')
WHERE template = 'event_reminder'
  AND dedup_key ~ '^event:[0-9]+:reminder:[0-9]+$'
  AND context ? 'start_time';
