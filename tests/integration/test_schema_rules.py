"""Rules the database itself enforces, whichever application writes."""

import psycopg
import pytest


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO events (title, start_date, status) VALUES ('x', now(), 'finished')",
        "INSERT INTO events (title, start_date, end_date) VALUES ('x', now(), now() - interval '1 hour')",
        "INSERT INTO tickets (subject, department, category, recurrence_every) VALUES ('s', 'IT', 'HW', 0)",
        "INSERT INTO tickets (subject, department, category, recurrence_interval) VALUES ('s', 'IT', 'HW', 'hourly')",
        "INSERT INTO tickets (subject, department, category) VALUES ('   ', 'IT', 'HW')",
        "INSERT INTO workflows (name, department, category, end_logic) VALUES ('w', 'IT', 'HW', 'email')",
    ],
)
def test_invalid_rows_are_refused(db, statement):
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute(statement)


def test_one_ticket_per_occurrence_and_one_task_per_ticket(db):
    parent = db.execute(
        "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval, next_occurrence)"
        " VALUES ('weekly', 'IT', 'HW', true, 'weekly', now()) RETURNING id").fetchone()[0]
    occurrence = "INSERT INTO tickets (subject, department, category, recurring_parent_id, occurrence_at)" \
                 " VALUES ('weekly', 'IT', 'HW', %s, '2026-01-05T09:00Z') RETURNING id"
    child = db.execute(occurrence, (parent,)).fetchone()[0]
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(occurrence, (parent,))

    workflow = db.execute("INSERT INTO workflows (name, department, category) VALUES ('w', 'IT', 'HW')"
                          " RETURNING id").fetchone()[0]
    db.execute("INSERT INTO tasks (ticket_id, workflow_id) VALUES (%s, %s)", (child, workflow))
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute("INSERT INTO tasks (ticket_id, workflow_id) VALUES (%s, %s)", (child, workflow))


def test_action_log_is_unique_per_ticket_and_action(db):
    row = "INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status)" \
          " VALUES (7, 'comment', 'comment:abc:v1', 'abc', 'completed')"
    db.execute(row)
    with pytest.raises(psycopg.errors.UniqueViolation):
        db.execute(row)
