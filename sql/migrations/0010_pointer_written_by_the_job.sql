-- The pointer the recurring job last wrote. A next_occurrence that differs from
-- it was set by someone else: when that instant is also off the template's
-- schedule, the job restarts an interval series there (the seed's users
-- reschedule by editing next_occurrence). Edits of other schedule columns, a
-- tz database update or a new default zone leave next_occurrence alone, so
-- they never look like a hand edit. Existing pointers, of templates switched
-- off too, count as the job's: a pointer edited before this upgrade keeps the
-- meaning it had when it was edited (where the series resumes). A template's
-- pointer as created (derived from its start, or equal to it) or as switched on
-- counts as the schedule's own too, unless it was edited while the template was
-- off or is edited in the same UPDATE (fixing a parked template's start must
-- not read its old pointer as a hand edit).
-- depends: 0009_event_reminder_per_start

ALTER TABLE tickets ADD COLUMN job_next_occurrence timestamptz;

COMMENT ON COLUMN tickets.job_next_occurrence IS
    'The next_occurrence the recurring job last wrote; a different next_occurrence was set by hand.';

UPDATE tickets SET job_next_occurrence = next_occurrence WHERE next_occurrence IS NOT NULL;

-- A template's pointer as created, or as switched on without a new one, is the
-- schedule's own, like one the job wrote; an ended series given a new schedule
-- starts again at its anchor. Same function as 0002 otherwise (see its comments).
CREATE OR REPLACE FUNCTION ticketflow_recurrence_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- a pointer given apart from the anchor, now or while the template was off, is a hand edit
    pointer_by_hand boolean := CASE WHEN TG_OP = 'INSERT'
                                    THEN NEW.next_occurrence <> NEW.recurrence_start
                                    ELSE NEW.next_occurrence IS DISTINCT FROM OLD.next_occurrence
                                         OR OLD.next_occurrence IS DISTINCT FROM OLD.job_next_occurrence END;
BEGIN
    IF NEW.is_recurring THEN
        NEW.recurrence_start := coalesce(NEW.recurrence_start, NEW.next_occurrence);
        IF TG_OP = 'INSERT' OR NOT OLD.is_recurring THEN  -- created or switched on: start at the anchor
            NEW.next_occurrence := coalesce(NEW.next_occurrence, NEW.recurrence_start);
            IF NOT coalesce(pointer_by_hand, false) THEN
                NEW.job_next_occurrence := NEW.next_occurrence;
            END IF;
        ELSIF NEW.next_occurrence IS NULL AND OLD.next_occurrence IS NULL
              AND (NEW.recurrence_rule, NEW.recurrence_start, NEW.recurrence_end, NEW.recurrence_interval,
                   NEW.recurrence_every) IS DISTINCT FROM
                  (OLD.recurrence_rule, OLD.recurrence_start, OLD.recurrence_end, OLD.recurrence_interval,
                   OLD.recurrence_every) THEN
            -- a series that had ended (COUNT, UNTIL) and is given a new schedule runs again from its anchor
            NEW.next_occurrence := NEW.recurrence_start;
            NEW.job_next_occurrence := NEW.recurrence_start;
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.recurrence_error IS NOT DISTINCT FROM OLD.recurrence_error
       AND (NEW.recurrence_interval, NEW.recurrence_every, NEW.recurrence_rule, NEW.recurrence_timezone,
            NEW.recurrence_start, NEW.next_occurrence, NEW.recurrence_end, NEW.is_recurring, NEW.archived)
           IS DISTINCT FROM
           (OLD.recurrence_interval, OLD.recurrence_every, OLD.recurrence_rule, OLD.recurrence_timezone,
            OLD.recurrence_start, OLD.next_occurrence, OLD.recurrence_end, OLD.is_recurring, OLD.archived) THEN
        NEW.recurrence_error := NULL;
    END IF;
    RETURN NEW;
END
$$;

-- The trigger also sees edits of an ended series (no pointer); the job's own
-- pointer advances still pass it by.
DROP TRIGGER tickets_recurrence_defaults_update ON tickets;
CREATE TRIGGER tickets_recurrence_defaults_update
    BEFORE UPDATE ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring AND (NEW.recurrence_start IS NULL OR NOT OLD.is_recurring
                                             OR OLD.recurrence_error IS NOT NULL
                                             OR (OLD.next_occurrence IS NULL AND NEW.next_occurrence IS NULL)))
    EXECUTE FUNCTION ticketflow_recurrence_defaults();
