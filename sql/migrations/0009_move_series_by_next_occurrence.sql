-- Moving a template's next_occurrence by hand moves its series. The seed's
-- users reschedule a recurring ticket by editing next_occurrence; before this,
-- the job read that edit only as a lower bound on occurrences computed from the
-- unchanged anchor, so "next one Tuesday 14:00" on a daily 09:00 template gave
-- no ticket on Tuesday and the next on Wednesday 09:00. Now an edit that sets
-- next_occurrence without recurrence_start makes the new value the anchor: the
-- next ticket is for that instant (for an RRULE, when the rule allows it) and
-- later ones follow the schedule from there. The recurring job advances the
-- pointer with `ticketflow.advancing_pointers` set for its transaction, which
-- this rule leaves alone. Same function as 0002 otherwise (see its comments).
-- depends: 0008_inline_occurrence_arithmetic

CREATE OR REPLACE FUNCTION ticketflow_recurrence_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_recurring THEN
        NEW.recurrence_start := coalesce(NEW.recurrence_start, NEW.next_occurrence);
        IF TG_OP = 'INSERT' OR NOT OLD.is_recurring THEN  -- created or switched on: start at the anchor
            NEW.next_occurrence := coalesce(NEW.next_occurrence, NEW.recurrence_start);
        ELSIF NEW.next_occurrence IS NOT NULL
              AND NEW.next_occurrence IS DISTINCT FROM OLD.next_occurrence
              AND NEW.recurrence_start IS NOT DISTINCT FROM OLD.recurrence_start
              AND current_setting('ticketflow.advancing_pointers', true) IS DISTINCT FROM 'on' THEN
            NEW.recurrence_start := NEW.next_occurrence;  -- moved by hand: the series restarts there
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

-- The WHEN clause still keeps the trigger off the job's bulk pointer advances.
DROP TRIGGER tickets_recurrence_defaults_update ON tickets;
CREATE TRIGGER tickets_recurrence_defaults_update
    BEFORE UPDATE ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring AND (NEW.recurrence_start IS NULL OR NOT OLD.is_recurring
                                             OR OLD.recurrence_error IS NOT NULL
                                             OR (NEW.next_occurrence IS DISTINCT FROM OLD.next_occurrence
                                                 AND current_setting('ticketflow.advancing_pointers', true)
                                                     IS DISTINCT FROM 'on')))
    EXECUTE FUNCTION ticketflow_recurrence_defaults();
