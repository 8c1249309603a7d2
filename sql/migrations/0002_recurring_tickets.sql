-- Recurring tickets: schedule rules the database enforces, the DST-correct
-- occurrence arithmetic, skipped occurrences, and the run audit view.
-- depends: 0001_core_schema

-- The IANA zone names a template may use: PostgreSQL's own zone database,
-- without the posix/ and right/ variants. A foreign key, not a test of
-- AT TIME ZONE, because that also accepts abbreviations (CEST) and POSIX
-- strings (UTC+3, which means three hours *behind* UTC). After a PostgreSQL
-- upgrade brings new zones: INSERT INTO time_zones SELECT name FROM
-- pg_timezone_names ON CONFLICT DO NOTHING.
CREATE TABLE time_zones (name text PRIMARY KEY);
INSERT INTO time_zones SELECT name FROM pg_timezone_names WHERE name !~ '^(posix|right)/';

-- A local wall time in `tz` as an instant, as RFC 5545 section 3.3.5 reads it:
-- a time that does not exist (spring forward) takes the UTC offset in effect
-- before the gap; a time that occurs twice (fall back) means its first
-- occurrence. PostgreSQL's own AT TIME ZONE gets the gap right but picks the
-- second reading of a repeated time. So: when the offset a day earlier is the
-- same (no transition near, the common case), PostgreSQL's reading stands;
-- otherwise the reading with the earlier offset wins if it maps back to the
-- same wall time.
CREATE FUNCTION ticketflow_local_to_instant(wall timestamp, tz text) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
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
-- the planner inlines it when it is used in FROM.
CREATE FUNCTION ticketflow_interval_occurrences(
    anchor timestamptz, tz text, unit text, every integer, from_at timestamptz, until_at timestamptz
) RETURNS TABLE (occurrence_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN k = 0 THEN anchor
                ELSE ticketflow_local_to_instant(s.anchor_wall + k * s.step, tz) END
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
    generate_series(greatest(0, s.k_from), greatest(0, s.k_until + 1)) AS k
$$;

ALTER TABLE tickets
    ADD COLUMN recurrence_error text,
    ADD CONSTRAINT tickets_recurrence_timezone_known
        FOREIGN KEY (recurrence_timezone) REFERENCES time_zones (name),
    ADD CONSTRAINT tickets_recurrence_start_sane
        CHECK (recurrence_start BETWEEN '1900-01-01' AND '9000-01-01'),
    ADD CONSTRAINT tickets_recurring_has_schedule
        CHECK (NOT is_recurring OR recurrence_interval IS NOT NULL OR recurrence_rule IS NOT NULL),
    ADD CONSTRAINT tickets_recurring_has_anchor
        CHECK (NOT is_recurring OR recurrence_start IS NOT NULL OR next_occurrence IS NOT NULL);

COMMENT ON COLUMN tickets.recurrence_error IS
    'Why the recurring job cannot schedule this template (for example an RRULE it cannot parse); '
    'cleared automatically when the schedule is edited.';

-- The anchor defaults from next_occurrence (and the other way round on insert),
-- and editing a template's schedule clears the error that parked it.
CREATE FUNCTION ticketflow_recurrence_defaults() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.is_recurring THEN
        NEW.recurrence_start := coalesce(NEW.recurrence_start, NEW.next_occurrence);
        IF TG_OP = 'INSERT' OR NOT OLD.is_recurring THEN  -- created or switched on: start at the anchor
            NEW.next_occurrence := coalesce(NEW.next_occurrence, NEW.recurrence_start);
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

-- WHEN clauses keep the trigger off the rows the recurring job writes in bulk
-- (generated occurrences, pointer advances of templates without an error).
CREATE TRIGGER tickets_recurrence_defaults_insert
    BEFORE INSERT ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring)
    EXECUTE FUNCTION ticketflow_recurrence_defaults();
CREATE TRIGGER tickets_recurrence_defaults_update
    BEFORE UPDATE ON tickets
    FOR EACH ROW WHEN (NEW.is_recurring AND (NEW.recurrence_start IS NULL OR NOT OLD.is_recurring
                                             OR OLD.recurrence_error IS NOT NULL))
    EXECUTE FUNCTION ticketflow_recurrence_defaults();

-- The recurring job claims live, schedulable templates by their next occurrence.
DROP INDEX tickets_due_templates;
CREATE INDEX tickets_due_templates ON tickets (next_occurrence) INCLUDE (recurrence_lead_time)
    WHERE is_recurring AND NOT archived AND recurrence_error IS NULL;

-- Occurrences a run chose not to create (missed_policy latest_only), kept so
-- that an operator can see what was skipped and why.
CREATE TABLE recurring_occurrence_skips (
    template_id   bigint NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    occurrence_at timestamptz NOT NULL,
    run_id        text NOT NULL,
    reason        text NOT NULL,
    skipped_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (template_id, occurrence_at)
);

-- The seed's RecurringTicketRun, read from the one audit of runs.
CREATE VIEW recurring_ticket_runs AS
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
