-- Recurring templates are changed by explicit actions (pause, resume, skip,
-- move, reschedule: the API under /ticketflow/recurring, or the columns below
-- for applications that write the database), never by switching is_recurring.
--
-- * is_recurring is fixed when a row is inserted: a template stays a template
--   and a ticket stays a ticket. Switching a template off used to turn it into
--   a live ticket that assignment gave a task; it is now refused, and pausing
--   (paused_at) is how a template stops. A task is refused for a template row
--   by the database too, whatever path asks for one.
-- * Templates that were switched off (is_recurring = false, a schedule, no
--   task, never a generated ticket) become paused templates, so none of them
--   is ever given a task; their series stay where they were.
-- * reschedule_at: written by the reschedule action or by another
--   application; the recurring job consumes it (the series restarts there).
-- * recurring_occurrence_skips also records skips and moves made by people:
--   kind 'skipped' or 'moved' (to moved_to), with who (skipped_by) and why.
--   A moved occurrence's ticket (ticket_id once created) keeps the occurrence
--   it stands for as its occurrence_at.
-- depends: 0016_bulk_intake_and_assignment_parts

ALTER TABLE tickets
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN paused_by text,
    ADD COLUMN pause_reason text,
    ADD COLUMN reschedule_at timestamptz,
    ADD COLUMN reschedule_by text,
    ADD COLUMN reschedule_reason text,
    ADD CONSTRAINT tickets_paused_is_template CHECK (paused_at IS NULL OR is_recurring),
    ADD CONSTRAINT tickets_reschedule_at_sane CHECK (reschedule_at BETWEEN '1900-01-01' AND '9000-01-01'),
    ADD CONSTRAINT tickets_paused_by_length CHECK (char_length(paused_by) <= 254),
    ADD CONSTRAINT tickets_pause_reason_length CHECK (char_length(pause_reason) <= 1000),
    ADD CONSTRAINT tickets_reschedule_by_length CHECK (char_length(reschedule_by) <= 254),
    ADD CONSTRAINT tickets_reschedule_reason_length CHECK (char_length(reschedule_reason) <= 1000);

COMMENT ON COLUMN tickets.paused_at IS
    'Set when a recurring template is paused (with paused_by and pause_reason): the job creates nothing for it'
    ' until it is resumed. A paused template is still a template: it never gets a task.';
COMMENT ON COLUMN tickets.reschedule_at IS
    'Write an instant here to restart the template''s series there (its new start and next occurrence); the'
    ' recurring job applies it at its next run and clears it. The way for other applications to reschedule.';

UPDATE tickets t
SET is_recurring = true, paused_at = now(), paused_by = 'migration 0017',
    pause_reason = 'was switched off with is_recurring = false'
WHERE NOT t.is_recurring AND NOT t.archived AND t.recurring_parent_id IS NULL
  AND (t.recurrence_interval IS NOT NULL OR t.recurrence_rule IS NOT NULL)
  AND (t.recurrence_start IS NOT NULL OR t.next_occurrence IS NOT NULL)
  AND char_length(t.subject) <= 487
  AND NOT EXISTS (SELECT 1 FROM tasks k WHERE k.ticket_id = t.id);

CREATE FUNCTION ticketflow_is_recurring_is_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ticket %: is_recurring cannot change after insert', NEW.id
        USING ERRCODE = 'check_violation', CONSTRAINT = 'tickets_is_recurring_fixed',
              HINT = 'a recurring template stays a template: pause it (paused_at) or archive it';
END
$$;

CREATE TRIGGER tickets_is_recurring_fixed
    BEFORE UPDATE OF is_recurring ON tickets
    FOR EACH ROW WHEN (OLD.is_recurring IS DISTINCT FROM NEW.is_recurring)
    EXECUTE FUNCTION ticketflow_is_recurring_is_fixed();

CREATE FUNCTION ticketflow_no_task_for_templates() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM tickets WHERE id = NEW.ticket_id AND is_recurring) THEN
        RAISE EXCEPTION 'ticket % is a recurring template: the tickets it creates get the tasks', NEW.ticket_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'tasks_not_for_templates';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_not_for_templates
    BEFORE INSERT OR UPDATE OF ticket_id ON tasks
    FOR EACH ROW EXECUTE FUNCTION ticketflow_no_task_for_templates();

CREATE INDEX tickets_reschedules_pending ON tickets (id) WHERE reschedule_at IS NOT NULL;

ALTER TABLE recurring_occurrence_skips
    ALTER COLUMN run_id DROP NOT NULL,
    ADD COLUMN kind text NOT NULL DEFAULT 'skipped' CHECK (kind IN ('skipped', 'moved')),
    ADD COLUMN moved_to timestamptz,
    ADD COLUMN skipped_by text,
    ADD COLUMN ticket_id bigint,
    ADD CONSTRAINT recurring_occurrence_skips_moved_has_target CHECK ((kind = 'moved') = (moved_to IS NOT NULL)),
    ADD CONSTRAINT recurring_occurrence_skips_moved_to_sane CHECK (moved_to BETWEEN '1900-01-01' AND '9000-01-01'),
    ADD CONSTRAINT recurring_occurrence_skips_skipped_by_length CHECK (char_length(skipped_by) <= 254),
    ADD CONSTRAINT recurring_occurrence_skips_reason_length CHECK (char_length(reason) <= 1000);

COMMENT ON COLUMN recurring_occurrence_skips.kind IS
    '''skipped'': the occurrence gets no ticket (the job''s missed policy, or a person: skipped_by); ''moved'':'
    ' its ticket is created at moved_to instead (ticket_id once it is).';

-- The job creates moved occurrences' tickets when they fall due.
CREATE INDEX recurring_moves_pending ON recurring_occurrence_skips (moved_to)
    WHERE kind = 'moved' AND ticket_id IS NULL;

-- Each live template's state, as the API and the dashboard show it: paused
-- (by a person), parked (the job cannot schedule it: recurrence_error says
-- why), ended (no occurrence left) or active. Archived templates are gone.
CREATE VIEW recurring_template_states AS
SELECT t.id AS template_id,
       CASE WHEN t.paused_at IS NOT NULL THEN 'paused'
            WHEN t.recurrence_error IS NOT NULL THEN 'parked'
            WHEN t.next_occurrence IS NULL OR t.next_occurrence > t.recurrence_end THEN 'ended'
            ELSE 'active' END AS state
FROM tickets t
WHERE t.is_recurring AND NOT t.archived;
