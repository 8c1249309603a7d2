-- The current definitions of the recurring-ticket functions, triggers and
-- views, in one readable place. The migrations created them (numbers below);
-- tests/integration/test_sql_functions.py applies this file to a migrated
-- database and checks that it changes nothing, so the two never drift apart.
-- To change one: write a new migration, then copy its definition here.

-- Occurrence arithmetic (0008). A local wall time in `tz` as an instant, as
-- RFC 5545 section 3.3.5 reads it: a time that does not exist (spring
-- forward) takes the UTC offset in effect before the gap; a time that occurs
-- twice (fall back) means its first occurrence. PostgreSQL's own AT TIME ZONE
-- gets the gap right but picks the second reading of a repeated time. So:
-- when the offset a day earlier is the same (no transition near, the common
-- case), PostgreSQL's reading stands; otherwise the reading with the earlier
-- offset wins if it maps back to the same wall time. A set of one row so the
-- planner inlines it (ticketflow.recurrence.local_to_instant is Python's
-- reading of the same rule, for RRULEs; tests hold the two together).
CREATE OR REPLACE FUNCTION ticketflow_local_to_instant(wall timestamp, tz text) RETURNS SETOF timestamptz
LANGUAGE sql STABLE PARALLEL SAFE ROWS 1 AS $$
    SELECT CASE
        WHEN offset_before = wall - (later AT TIME ZONE 'UTC') THEN later
        WHEN ((wall - offset_before) AT TIME ZONE 'UTC') AT TIME ZONE tz = wall
            THEN least((wall - offset_before) AT TIME ZONE 'UTC', later)
        ELSE later END
    FROM (SELECT wall AT TIME ZONE tz AS later) AS pg,
         LATERAL (SELECT ((later - interval '24 hours') AT TIME ZONE tz)
                         - ((later - interval '24 hours') AT TIME ZONE 'UTC') AS offset_before) AS o
$$;

-- Occurrences of "every `every` `unit`s from `anchor`" (unit: daily, weekly,
-- monthly) around the window [from_at, until_at]: every occurrence in the
-- window and the first one after it, possibly preceded by one before from_at
-- (callers filter). Each is computed from the anchor's local wall time in `tz`
-- (never from the previous result), so monthly on the 31st gives Jan 31,
-- Feb 28/29, Mar 31 and 09:00 stays 09:00 across DST. Occurrence 0 is the
-- anchor itself. The step count k is found from local calendar dates, so only
-- a couple of candidates are computed per call. A single SELECT, not STRICT:
-- the planner inlines it when it is used in FROM (0008).
CREATE OR REPLACE FUNCTION ticketflow_interval_occurrences(
    anchor timestamptz, tz text, unit text, every integer, from_at timestamptz, until_at timestamptz
) RETURNS TABLE (occurrence_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN k = 0 THEN anchor
                ELSE i.instant END
    FROM (
        SELECT w.anchor_wall,
               CASE unit WHEN 'monthly' THEN interval '1 month' WHEN 'weekly' THEN interval '7 days'
                         ELSE interval '1 day' END * every AS step,
               CASE unit WHEN 'monthly' THEN
                   ((extract(year FROM w.f) - extract(year FROM w.anchor_wall)) * 12
                    + extract(month FROM w.f) - extract(month FROM w.anchor_wall))::int / every
               ELSE (w.f::date - w.anchor_wall::date) / (CASE unit WHEN 'weekly' THEN 7 ELSE 1 END * every)
               END AS k_from,
               CASE unit WHEN 'monthly' THEN
                   ((extract(year FROM w.u) - extract(year FROM w.anchor_wall)) * 12
                    + extract(month FROM w.u) - extract(month FROM w.anchor_wall))::int / every
               ELSE (w.u::date - w.anchor_wall::date) / (CASE unit WHEN 'weekly' THEN 7 ELSE 1 END * every)
               END AS k_until
        FROM (SELECT anchor AT TIME ZONE tz AS anchor_wall, from_at AT TIME ZONE tz AS f,
                     until_at AT TIME ZONE tz AS u) AS w
    ) AS s,
    generate_series(greatest(0, s.k_from), greatest(0, s.k_until + 1)) AS k,
    LATERAL ticketflow_local_to_instant(s.anchor_wall + k * s.step, tz) AS i (instant)
$$;

-- Template defaults (0018): at insert a template's next occurrence is its
-- start, or the start is the next occurrence given; an ended series given a
-- new schedule runs again from its start; editing a template's schedule
-- clears the error that parked it.
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

CREATE OR REPLACE TRIGGER tickets_recurrence_defaults_insert
    BEFORE INSERT ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring)
    EXECUTE FUNCTION ticketflow_recurrence_defaults();

CREATE OR REPLACE TRIGGER tickets_recurrence_defaults_update
    BEFORE UPDATE ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring AND (NEW.recurrence_start IS NULL OR OLD.recurrence_error IS NOT NULL
                                             OR (OLD.next_occurrence IS NULL AND NEW.next_occurrence IS NULL)))
    EXECUTE FUNCTION ticketflow_recurrence_defaults();

-- The pointer is the job's (0018): only a transaction that set
-- ticketflow.recurring_engine = 'on' (ticketflow.recurring.as_the_job) may
-- change next_occurrence.
CREATE OR REPLACE FUNCTION ticketflow_pointer_is_the_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket %: next_occurrence is the recurring job''s pointer', NEW.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_pointer_is_the_jobs',
              HINT = 'reschedule with reschedule_at (or the API''s reschedule), skip or move an occurrence, or'
                     ' pause the template';
END
$$;

CREATE OR REPLACE TRIGGER tickets_a_pointer_is_the_jobs
    BEFORE UPDATE OF next_occurrence ON tickets
    FOR EACH ROW WHEN (OLD.next_occurrence IS DISTINCT FROM NEW.next_occurrence
                       AND current_setting('ticketflow.recurring_engine', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION ticketflow_pointer_is_the_jobs();

-- A template stays a template, a ticket a ticket (0017).
CREATE OR REPLACE FUNCTION ticketflow_is_recurring_is_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket %: is_recurring cannot change after insert', NEW.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_is_recurring_fixed',
              HINT = 'a recurring template stays a template: pause it (paused_at) or archive it';
END
$$;

CREATE OR REPLACE TRIGGER tickets_is_recurring_fixed
    BEFORE UPDATE OF is_recurring ON tickets
    FOR EACH ROW WHEN (OLD.is_recurring IS DISTINCT FROM NEW.is_recurring)
    EXECUTE FUNCTION ticketflow_is_recurring_is_fixed();

-- No task for a template row, whatever path asks for one (0017).
CREATE OR REPLACE FUNCTION ticketflow_no_task_for_templates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tickets WHERE id = NEW.ticket_id AND is_recurring) THEN
        RAISE EXCEPTION 'ticket % is a recurring template: the tickets it creates get the tasks', NEW.ticket_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tasks_not_for_templates';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER tasks_not_for_templates
    BEFORE INSERT OR UPDATE OF ticket_id ON tasks
    FOR EACH ROW EXECUTE FUNCTION ticketflow_no_task_for_templates();

-- The templates the job schedules: live, not paused, not parked (0018).
CREATE OR REPLACE VIEW recurring_scheduled_templates AS
SELECT t.*
FROM tickets t
WHERE t.is_recurring AND NOT t.archived AND t.recurrence_error IS NULL AND t.paused_at IS NULL;

-- Each live template's state as the API and the dashboard show it (0017).
CREATE OR REPLACE VIEW recurring_template_states AS
SELECT t.id AS template_id,
       CASE WHEN t.paused_at IS NOT NULL THEN 'paused'
            WHEN t.recurrence_error IS NOT NULL THEN 'parked'
            WHEN t.next_occurrence IS NULL OR t.next_occurrence > t.recurrence_end THEN 'ended'
            ELSE 'active' END AS state
FROM tickets t
WHERE t.is_recurring AND NOT t.archived;

-- The seed's RecurringTicketRun, read from the one audit of runs (0002).
CREATE OR REPLACE VIEW recurring_ticket_runs AS
SELECT id, run_id, due_at, started_at, finished_at,
       processed AS total_processed,
       changed AS total_created,
       skipped AS total_skipped,
       status,
       coalesce(extract(epoch FROM finished_at - started_at), 0)::double precision AS duration_seconds,
       error AS error_message,
       details
FROM automation_runs
WHERE dag_id = 'recurring_tickets';
