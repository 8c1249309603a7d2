"""Every text column input reaches has a length bound in the database, the one `ticketflow.limits` gives."""

import shutil
from datetime import UTC, datetime

import psycopg
import pytest

from ticketflow import intake, limits
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.migrate import migrate
from ticketflow.recurring import create_due_occurrences
from ticketflow.settings import MIGRATIONS_DIR

BOUNDS = "0013_input_length_bounds"
#: One valid row per bounded table, to lengthen one column at a time.
ROWS = {
    "tickets": "INSERT INTO tickets (subject, department, category) VALUES ('s', 'IT', 'HW') RETURNING id",
    "workflows": "INSERT INTO workflows (name, department, category) VALUES ('w', 'IT', 'HW') RETURNING id",
    "steps": "INSERT INTO steps (workflow_id, name, role_name, step_order)"
             " VALUES ((SELECT min(id) FROM workflows), 's', 'r', 1) RETURNING id",
    "events": "INSERT INTO events (title, start_date) VALUES ('e', now()) RETURNING id",
    "customers": "INSERT INTO customers (username, email) VALUES ('c', 'c@example.org') RETURNING id",
    "email_outbox": "INSERT INTO email_outbox (dedup_key, template, context) VALUES ('k', 'event_reminder', '{}')"
                    " RETURNING id",
}


def test_each_bounded_column_takes_its_limit_and_refuses_one_character_more(db):
    ids = {table: db.execute(statement).fetchone()[0] for table, statement in ROWS.items()}
    assert set(ids) == set(limits.COLUMN_LENGTHS)
    for table, columns in limits.COLUMN_LENGTHS.items():
        for column, longest in columns.items():
            update = f"UPDATE {table} SET {column} = repeat('é', %s) WHERE id = %s"  # characters, not bytes
            db.execute(update, (longest, ids[table]))
            with pytest.raises(psycopg.errors.CheckViolation, match=f"{table}_{column}_length"):
                db.execute(update, (longest + 1, ids[table]))


def test_a_recurring_templates_subject_leaves_room_for_the_date_its_tickets_add(db):
    template = ("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                " next_occurrence) VALUES (%s, 'IT', 'Ops', true, 'daily', '2026-03-02T09:00Z') RETURNING id")
    with pytest.raises(psycopg.errors.CheckViolation, match="tickets_template_subject_length"):
        db.execute(template, ("s" * (limits.TEMPLATE_SUBJECT + 1),))
    longest = db.execute(template, ("s" * limits.TEMPLATE_SUBJECT,)).fetchone()[0]
    with AuditedRun(db, RunWindow(dag_id="recurring_tickets", run_id="scheduled__bounds",
                                  due_at=datetime(2026, 3, 2, 9, 5, tzinfo=UTC))) as run:
        create_due_occurrences(run, "UTC")
    assert db.execute("SELECT char_length(subject) FROM tickets WHERE recurring_parent_id = %s",
                      (longest,)).fetchone()[0] == limits.column_length("tickets", "subject")
    with pytest.raises(psycopg.errors.CheckViolation, match="tickets_template_subject_length"):
        db.execute("UPDATE tickets SET subject = %s WHERE id = %s", ("s" * (limits.TEMPLATE_SUBJECT + 1), longest))


def test_intake_refuses_what_the_columns_would_before_any_write(db):
    too_long = {"subject": "s" * 501, "department": "d" * 201, "external_id": "x" * 256,
                "description": "y" * 100_001, "requester_email": "a" * 250 + "@b.org"}
    for field, value in too_long.items():
        ticket = {"subject": "s", "department": "IT", "category": "HW", field: value}
        with pytest.raises(intake.InvalidTicket, match=f"{field} is longer than"):
            intake.receive_ticket(db, ticket, intake_key=f"bounds/{field}")
    assert db.execute("SELECT count(*) FROM tickets").fetchone()[0] == 0
    assert all(intake.FIELD_SCHEMAS[name]["maxLength"] == limits.column_length("tickets", name)
               for name in (*intake.REQUIRED, *intake.OPTIONAL))


def test_rows_already_too_long_stop_the_migration_which_names_them_and_changes_nothing(database_factory, tmp_path):
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.stem < BOUNDS:
            shutil.copy(path, before)
    url = database_factory()
    migrate(url, before)
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [conn.execute("INSERT INTO tickets (subject, department, category) VALUES (%s, %s, 'HW') RETURNING id",
                            (subject, department)).fetchone()[0]
               for subject, department in (("fine", "IT"), ("s" * 501, "IT"), ("fine", "d" * 5000))]
        conn.execute("INSERT INTO events (title, start_date) VALUES (%s, now())", ("t" * 201,))
        template = conn.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                                " next_occurrence) VALUES (%s, 'IT', 'HW', true, 'daily', now()) RETURNING id",
                                ("r" * 490,)).fetchone()[0]

        shutil.copy(MIGRATIONS_DIR / f"{BOUNDS}.sql", before)
        with pytest.raises(psycopg.errors.RaiseException) as refused:
            migrate(url, before)
        assert refused.value.diag.message_detail.splitlines() == [
            f"tickets.subject is longer than 500 characters in rows with id {ids[1]}",
            f"tickets.subject is longer than 487 characters in rows with id {template} (is_recurring)",
            f"tickets.department is longer than 200 characters in rows with id {ids[2]}",
            "events.title is longer than 200 characters in rows with id 1"]
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname LIKE '%\\_length'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM _yoyo_migration WHERE migration_id = %s",
                            (BOUNDS,)).fetchone()[0] == 0
        assert conn.execute("SELECT char_length(subject) FROM tickets WHERE id = %s", (ids[1],)).fetchone()[0] == 501

        conn.execute("UPDATE tickets SET subject = left(subject, CASE WHEN is_recurring THEN 487 ELSE 500 END),"
                     " department = left(department, 200)")
        conn.execute("UPDATE events SET title = left(title, 200)")
        assert migrate(url, before).applied == [BOUNDS]
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname LIKE '%\\_length'").fetchone()[0] == sum(
            len(columns) for columns in limits.COLUMN_LENGTHS.values()) + 1  # and the templates' subjects
