-- Task assignment: allocation errors with backoff, the durable round-robin,
-- and the NOTIFY that wakes the assignment DAG when tickets arrive.
-- depends: 0003_lifecycles_and_outbox

ALTER TABLE tickets
    ADD COLUMN allocation_error text,
    ADD COLUMN allocation_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN next_allocation_at timestamptz;

COMMENT ON COLUMN tickets.allocation_error IS
    'Why no task could be created yet (no matching workflow, no steps, no users, TTS unreachable); '
    'the ticket is retried at next_allocation_at with exponential backoff.';

-- Intake without an external id is keyed by the Airflow run that brought the
-- ticket, so a retried intake task cannot create it twice.
ALTER TABLE tickets ADD COLUMN intake_key text;
CREATE UNIQUE INDEX tickets_intake_key ON tickets (intake_key) WHERE intake_key IS NOT NULL;

-- What the assignment DAG reads: real tickets (not recurring templates) still
-- waiting for a task, oldest first.
CREATE INDEX tickets_waiting_for_task ON tickets (created_at)
    WHERE NOT is_task_allocated AND NOT is_recurring AND NOT archived;

-- The round-robin, durable and shared by every worker: one row per user of a
-- role. The least recently assigned user (a NULL turn: never) goes next;
-- users that TTS adds or drops do not shift everyone else's place.
CREATE SEQUENCE role_rotation_turn;
CREATE TABLE role_rotation (
    role_name   text NOT NULL,
    user_id     bigint NOT NULL,
    last_turn   bigint,
    assignments bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (role_name, user_id)
);

CREATE FUNCTION ticketflow_tickets_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ticketflow_tickets', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER tickets_notify
    AFTER INSERT ON tickets
    FOR EACH STATEMENT EXECUTE FUNCTION ticketflow_tickets_notify();

ALTER TABLE tasks ADD COLUMN completed_at timestamptz;

-- Completing a task whose workflow ends with a notification tells the requester.
ALTER TABLE email_outbox DROP CONSTRAINT email_outbox_template_check;
ALTER TABLE email_outbox ADD CONSTRAINT email_outbox_template_check
    CHECK (template IN ('reservation_confirmed', 'reservation_cancelled', 'reservation_new_admin',
                        'event_reminder', 'task_completed'));
