-- The task lifecycle the seed's API offered and this one now does (hold, cancel
-- with a reason, edit), with its status rule kept here so that every writer gets
-- it; and what retention needs to know before it may forget a TDX ticket's
-- action log: when the queue last saw the ticket in a report.
-- depends: 0011_zone_names_postgresql_reads_as_abbreviations

-- Why a task is on hold or was cancelled: only those two statuses have a reason,
-- and a cancelled task always has one. Cancelled tasks written before this column
-- existed get a placeholder.
ALTER TABLE tasks ADD COLUMN status_reason text;
UPDATE tasks SET status_reason = 'cancelled before reasons were recorded'
WHERE status = 'cancelled' AND status_reason IS NULL;
ALTER TABLE tasks
    ADD CONSTRAINT tasks_status_reason_length CHECK (length(status_reason) <= 1000),
    ADD CONSTRAINT tasks_cancelled_has_reason
        CHECK (status <> 'cancelled' OR coalesce(btrim(status_reason, E' \t\r\n'), '') <> ''),
    ADD CONSTRAINT tasks_reason_when_held_or_cancelled
        CHECK (status_reason IS NULL OR status IN ('on_hold', 'cancelled'));

COMMENT ON COLUMN tasks.status_reason IS
    'Why the task is on hold or cancelled (required to cancel); cleared when it goes to any other status.';
COMMENT ON COLUMN tasks.fetched_at IS
    'When a client last fetched the task for its assignee: written only when a client says so (the seed''s '
    'manual field), never by reading it.';

-- The seed's statuses and the moves between them. Completed and cancelled are
-- final; a held task resumes where it was (pending or in progress), or ends.
CREATE FUNCTION ticketflow_task_next_statuses(status text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE status
        WHEN 'pending' THEN ARRAY['in_progress', 'on_hold', 'completed', 'cancelled']
        WHEN 'in_progress' THEN ARRAY['on_hold', 'completed', 'cancelled']
        WHEN 'on_hold' THEN ARRAY['pending', 'in_progress', 'completed', 'cancelled']
        ELSE ARRAY[]::text[] END
$$;

-- Refuses any other move, whoever writes (the API answers 409 with this message),
-- and clears the reason when the task leaves hold for a status that has none.
CREATE FUNCTION ticketflow_task_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    allowed text[] := ticketflow_task_next_statuses(OLD.status);
BEGIN
    IF NOT NEW.status = ANY (allowed) THEN
        RAISE EXCEPTION 'task % cannot go from % to %', OLD.task_id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tasks_status_transition',
                  HINT = CASE WHEN cardinality(allowed) = 0 THEN OLD.status || ' is final'
                              ELSE 'from ' || OLD.status || ' it can go to ' || array_to_string(allowed, ', ') END;
    END IF;
    IF NEW.status NOT IN ('on_hold', 'cancelled') THEN
        NEW.status_reason := NULL;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_status_transition
    BEFORE UPDATE OF status ON tasks
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM OLD.status)
    EXECUTE FUNCTION ticketflow_task_transition();

-- A task's current step is a step of its own workflow (an edit can name any step).
-- NOT VALID: checked for every row written from now on, without failing the
-- upgrade over a row an older writer got wrong.
ALTER TABLE steps ADD CONSTRAINT steps_workflow_step UNIQUE (workflow_id, id);
ALTER TABLE tasks ADD CONSTRAINT tasks_step_of_its_workflow
    FOREIGN KEY (workflow_id, current_step_id) REFERENCES steps (workflow_id, id) NOT VALID;

-- The last read of each TDX report by an acting queue run (its due instant), and
-- for each ticket the last such read that listed it. A ticket's action log is what
-- keeps its actions exactly once, so retention forgets it only for a ticket that a
-- later read of its report no longer listed, and not for the retention age.
CREATE TABLE meta.tdx_report_reads (
    report_id    integer PRIMARY KEY,
    last_read_at timestamptz NOT NULL
);

CREATE TABLE meta.tdx_ticket_sightings (
    ticket_id    integer PRIMARY KEY,
    report_id    integer,  -- NULL: seen before sightings were recorded (report unknown)
    last_seen_at timestamptz NOT NULL
);

COMMENT ON TABLE meta.tdx_ticket_sightings IS
    'When an acting tdx_ticket_queue run last found each ticket in a report (refreshed at most hourly); '
    'retention keeps a ticket''s action log while its report still lists it.';

-- Tickets logged before this upgrade: seen when they were last acted on, in a report not recorded.
INSERT INTO meta.tdx_ticket_sightings (ticket_id, report_id, last_seen_at)
SELECT ticket_id, NULL, max(executed_at) FROM meta.daemon_action_log GROUP BY ticket_id;
