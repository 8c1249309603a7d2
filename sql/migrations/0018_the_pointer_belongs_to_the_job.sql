-- The recurring job stops guessing intent from edits of next_occurrence.
--
-- The pointer (next_occurrence) belongs to the job: an UPDATE that changes it
-- outside the job is refused (the job says who it is with the transaction
-- setting ticketflow.recurring_engine = 'on'). People change a series through
-- the explicit actions: pause (paused_at), skip and move
-- (recurring_occurrence_skips), reschedule (reschedule_at). At INSERT, a
-- next_occurrence given is the series' first occurrence, and so its anchor.
--
-- job_next_occurrence and the four pointer kinds it fed (job, handled,
-- on_schedule, moved) go. Pointers set by hand that the job had not read yet
-- are read once here, exactly as the job would have read them, so every
-- series stays where it is: one set off an interval schedule restarts the
-- series there (its new recurrence_start), a stale one written back over an
-- occurrence already handled returns to the job's, the others stay. (A
-- template without its own zone follows TICKETFLOW_TIMEZONE, which the
-- database does not know: its hand-set pointer, if any, just says where the
-- series resumes.)
--
-- The current definitions of the recurring functions, triggers and views are
-- in sql/functions/recurring_tickets.sql (tests/integration/test_sql_functions.py
-- holds the database to it).
-- depends: 0017_recurring_templates_by_explicit_actions

UPDATE tickets t
SET recurrence_start = CASE WHEN k.kind = 'moved' THEN t.next_occurrence ELSE t.recurrence_start END,
    next_occurrence = CASE WHEN k.kind = 'handled' THEN greatest(t.next_occurrence, t.job_next_occurrence)
                           ELSE t.next_occurrence END
FROM (
    SELECT o.id,
           CASE WHEN EXISTS (SELECT 1 FROM tickets c
                             WHERE c.recurring_parent_id = o.id AND c.occurrence_at = o.next_occurrence)
                  OR EXISTS (SELECT 1 FROM recurring_occurrence_skips s
                             WHERE s.template_id = o.id AND s.occurrence_at = o.next_occurrence) THEN 'handled'
                WHEN o.recurrence_rule IS NULL AND o.recurrence_timezone IS NOT NULL AND NOT EXISTS (
                    SELECT 1
                    FROM ticketflow_interval_occurrences(o.recurrence_start, o.recurrence_timezone,
                                                         o.recurrence_interval, o.recurrence_every,
                                                         o.next_occurrence, o.next_occurrence) AS i
                    WHERE i.occurrence_at = o.next_occurrence) THEN 'moved'
                ELSE 'on_schedule' END AS kind
    FROM tickets o
    WHERE o.is_recurring AND o.next_occurrence IS DISTINCT FROM o.job_next_occurrence
      AND o.next_occurrence IS NOT NULL AND o.recurrence_error IS NULL
) AS k
WHERE t.id = k.id AND k.kind <> 'on_schedule' AND t.next_occurrence >= '1900-01-01';

ALTER TABLE tickets DROP COLUMN job_next_occurrence;

COMMENT ON COLUMN tickets.next_occurrence IS
    'The recurring job''s pointer: the next occurrence it has not handled (NULL once a COUNT/UNTIL series has'
    ' ended). Only the job writes it; reschedule with reschedule_at.';

-- At insert a template's next occurrence is its start, or the start is the
-- next occurrence given; an ended series given a new schedule runs again from
-- its start; editing a template's schedule clears the error that parked it.
CREATE OR REPLACE FUNCTION ticketflow_recurrence_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_recurring THEN
        IF TG_OP = 'INSERT' THEN
            NEW.recurrence_start := coalesce(NEW.next_occurrence, NEW.recurrence_start);
            NEW.next_occurrence := NEW.recurrence_start;
        ELSIF NEW.recurrence_start IS NULL THEN
            NEW.recurrence_start := NEW.next_occurrence;
        ELSIF NEW.next_occurrence IS NULL AND OLD.next_occurrence IS NULL
              AND (NEW.recurrence_rule, NEW.recurrence_start, NEW.recurrence_end, NEW.recurrence_interval,
                   NEW.recurrence_every) IS DISTINCT FROM
                  (OLD.recurrence_rule, OLD.recurrence_start, OLD.recurrence_end, OLD.recurrence_interval,
                   OLD.recurrence_every) THEN
            NEW.next_occurrence := NEW.recurrence_start;
        END IF;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.recurrence_error IS NOT DISTINCT FROM OLD.recurrence_error
       AND (NEW.recurrence_interval, NEW.recurrence_every, NEW.recurrence_rule, NEW.recurrence_timezone,
            NEW.recurrence_start, NEW.recurrence_end, NEW.archived)
           IS DISTINCT FROM
           (OLD.recurrence_interval, OLD.recurrence_every, OLD.recurrence_rule, OLD.recurrence_timezone,
            OLD.recurrence_start, OLD.recurrence_end, OLD.archived) THEN
        NEW.recurrence_error := NULL;
    END IF;
    RETURN NEW;
END
$$;

DROP TRIGGER tickets_recurrence_defaults_update ON tickets;
CREATE TRIGGER tickets_recurrence_defaults_update
    BEFORE UPDATE ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring AND (NEW.recurrence_start IS NULL OR OLD.recurrence_error IS NOT NULL
                                             OR (OLD.next_occurrence IS NULL AND NEW.next_occurrence IS NULL)))
    EXECUTE FUNCTION ticketflow_recurrence_defaults();

CREATE FUNCTION ticketflow_pointer_is_the_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket %: next_occurrence is the recurring job''s pointer', NEW.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_pointer_is_the_jobs',
              HINT = 'reschedule with reschedule_at (or the API''s reschedule), skip or move an occurrence, or'
                     ' pause the template';
END
$$;

-- Named to fire before tickets_recurrence_defaults_update, so it sees the statement's own change.
CREATE TRIGGER tickets_a_pointer_is_the_jobs
    BEFORE UPDATE OF next_occurrence ON tickets
    FOR EACH ROW WHEN (OLD.next_occurrence IS DISTINCT FROM NEW.next_occurrence
                       AND current_setting('ticketflow.recurring_engine', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ticketflow_pointer_is_the_jobs();

-- The templates the job schedules: live, not paused, not parked. The one
-- statement of that rule: the job claims through it, and so does everything
-- else that asks which templates are scheduled.
CREATE VIEW recurring_scheduled_templates AS
SELECT t.*
FROM tickets t
WHERE t.is_recurring AND NOT t.archived AND t.recurrence_error IS NULL AND t.paused_at IS NULL;

DROP INDEX tickets_due_templates;
CREATE INDEX tickets_due_templates ON tickets (next_occurrence) INCLUDE (recurrence_lead_time)
    WHERE is_recurring AND NOT archived AND recurrence_error IS NULL AND paused_at IS NULL;
