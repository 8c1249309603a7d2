-- The pointer the recurring job last wrote. A next_occurrence that differs from
-- it was set by someone else: when that instant is also off the template's
-- schedule, the job restarts an interval series there (the seed's users
-- reschedule by editing next_occurrence). Edits of other schedule columns, a
-- tz database update or a new default zone leave next_occurrence alone, so
-- they never look like a hand edit. Existing pointers count as the job's.
-- depends: 0009_event_reminder_per_start

ALTER TABLE tickets ADD COLUMN job_next_occurrence timestamptz;

COMMENT ON COLUMN tickets.job_next_occurrence IS
    'The next_occurrence the recurring job last wrote; a different next_occurrence was set by hand.';

UPDATE tickets SET job_next_occurrence = next_occurrence WHERE is_recurring AND next_occurrence IS NOT NULL;
