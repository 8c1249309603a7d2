"""recurring_tickets in the real Airflow: a backfill creates what the scheduled runs would have, once."""

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e
DAG_ID = "recurring_tickets"
TASK_ID = "create_due_occurrences"
DAY = datetime(2026, 1, 10, tzinfo=UTC)
TEMPLATES = {"daily 10:02": DAY.replace(hour=10, minute=2), "daily 10:12": DAY.replace(hour=10, minute=12),
             "daily 10:20": DAY.replace(hour=10, minute=20)}


def _add_templates(db):
    for subject, first in TEMPLATES.items():
        db.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                   " next_occurrence, missed_policy) VALUES (%s, 'IT', 'Ops', true, 'daily', %s, 'create_all')",
                   (subject, first))


def _created(db):
    return db.execute("SELECT subject, occurrence_at FROM tickets WHERE recurring_parent_id IS NOT NULL"
                      " ORDER BY occurrence_at").fetchall()


@pytest.fixture
def recurring_db(stack_db):
    stack_db.execute("TRUNCATE tickets, recurring_occurrence_skips RESTART IDENTITY CASCADE")
    yield stack_db
    # Past templates would otherwise be picked up by the next scheduled run.
    stack_db.execute("UPDATE tickets SET archived = true WHERE is_recurring")


def test_a_backfill_creates_each_intervals_occurrences_once(api, stack, recurring_db):
    api.wait_for_quiet_window(DAG_ID, seconds=100)
    _add_templates(recurring_db)

    created = stack.airflow("backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", "1",
                            "--from-date", "2026-01-10T10:00:00+00:00", "--to-date", "2026-01-10T10:15:00+00:00")
    assert created.returncode == 0, created.stderr
    runs = api.wait_for_runs(DAG_ID, count=4, run_type="backfill")
    assert {r["state"] for r in runs} == {"success"}

    per_run = recurring_db.execute(
        "SELECT to_char(due_at AT TIME ZONE 'UTC', 'HH24:MI'), total_processed, total_created, status"
        " FROM recurring_ticket_runs WHERE run_id LIKE 'backfill%%' ORDER BY due_at").fetchall()
    assert per_run == [("10:00", 0, 0, "success"), ("10:05", 1, 1, "success"),
                       ("10:10", 0, 0, "success"), ("10:15", 1, 1, "success")]
    expected = [("daily 10:02 (2026-01-10)", TEMPLATES["daily 10:02"]),
                ("daily 10:12 (2026-01-10)", TEMPLATES["daily 10:12"])]
    assert _created(recurring_db) == expected
    pointers = dict(recurring_db.execute("SELECT subject, next_occurrence FROM tickets WHERE is_recurring").fetchall())
    assert pointers == {"daily 10:02": TEMPLATES["daily 10:02"] + timedelta(days=1),
                        "daily 10:12": TEMPLATES["daily 10:12"] + timedelta(days=1),
                        "daily 10:20": TEMPLATES["daily 10:20"]}

    # Clearing the 10:15 run (a rerun from the REST API) creates nothing twice ...
    [last] = [r for r in runs if r["logical_date"] == "2026-01-10T10:15:00Z"]
    api.clear(DAG_ID, last["dag_run_id"])
    assert api.wait_for_run(DAG_ID, last["dag_run_id"])["state"] == "success"
    assert api.xcom(DAG_ID, last["dag_run_id"], TASK_ID)["created"] == 0
    assert _created(recurring_db) == expected

    # ... and on fresh templates that single 10:15 run makes the same tickets the four runs made.
    recurring_db.execute("TRUNCATE tickets, recurring_occurrence_skips RESTART IDENTITY CASCADE")
    _add_templates(recurring_db)
    api.clear(DAG_ID, last["dag_run_id"])
    assert api.wait_for_run(DAG_ID, last["dag_run_id"])["state"] == "success"
    assert api.xcom(DAG_ID, last["dag_run_id"], TASK_ID)["created"] == 2
    assert _created(recurring_db) == expected
