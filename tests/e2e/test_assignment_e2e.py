"""Tickets become assigned tasks in the real Airflow: through the REST API, and written straight into the table."""

import time
from urllib.parse import quote

import psycopg
import pytest

from tests.support import eventually

pytestmark = pytest.mark.e2e
ROLE = "IT Support Technician"  # the stand-in TTS answers [3, 6, 9] for it


@pytest.fixture
def assignment_db(stack):
    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE tasks, steps, workflows, role_rotation RESTART IDENTITY CASCADE")
        conn.execute("UPDATE tickets SET is_task_allocated = true WHERE NOT is_task_allocated")  # not ours
        workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                " VALUES ('Hardware', 'IT', 'Hardware', true, 'deployed') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Diagnose', %s, 1)",
                     (workflow, ROLE))
        yield conn


def _wait_for_task(db, ticket_id, seconds=60):
    return eventually(lambda: db.execute("SELECT users, status FROM tasks WHERE ticket_id = %s",
                                         (ticket_id,)).fetchone(),
                      seconds, what=f"a task for ticket {ticket_id}", interval=0.2)


def test_a_ticket_posted_to_the_rest_api_gets_its_task_within_seconds(api, assignment_db):
    refused = api.session.post(api.url("dags/ticket_intake/dagRuns"), timeout=30,
                               json={"logical_date": None, "conf": {"department": "IT", "category": "Hardware"}})
    assert refused.status_code == 400 and "subject" in refused.text
    misspelt = api.trigger("ticket_intake", conf={"subject": "Typo", "department": "IT", "category": "Hardware",
                                                  "priorty": "urgent"})
    assert api.wait_for_run("ticket_intake", misspelt["dag_run_id"])["state"] == "failed"
    run_id = quote(misspelt["dag_run_id"], safe="")
    attempt = api.get(f"dags/ticket_intake/dagRuns/{run_id}/taskInstances/receive_ticket")
    assert (attempt["state"], attempt["try_number"]) == ("failed", 1)  # a bad ticket is not retried
    assert assignment_db.execute("SELECT count(*) FROM tickets WHERE subject = 'Typo'").fetchone()[0] == 0

    started = time.monotonic()
    run = api.trigger("ticket_intake", conf={"subject": "Laptop will not boot", "department": "IT",
                                             "category": "Hardware", "external_id": "E2E-1", "priority": "high"})
    assert api.wait_for_run("ticket_intake", run["dag_run_id"])["state"] == "success"
    result = api.xcom("ticket_intake", run["dag_run_id"], "receive_ticket")
    assert result["action"] == "created"
    users, status = _wait_for_task(assignment_db, result["ticket_id"])
    elapsed = time.monotonic() - started
    assert status == "pending" and [u["userID"] for u in users] == [3, 6, 9]
    assert elapsed < 60

    again = api.trigger("ticket_intake", conf={"subject": "Laptop will not boot (update)", "department": "IT",
                                               "category": "Hardware", "external_id": "E2E-1"})
    assert api.wait_for_run("ticket_intake", again["dag_run_id"])["state"] == "success"
    assert api.xcom("ticket_intake", again["dag_run_id"], "receive_ticket") == {
        "ticket_id": result["ticket_id"], "action": "updated"}
    assert assignment_db.execute("SELECT count(*) FROM tasks WHERE ticket_id = %s",
                                 (result["ticket_id"],)).fetchone()[0] == 1


def test_a_ticket_inserted_with_plain_sql_is_picked_up_too(assignment_db):
    ticket_id = assignment_db.execute("INSERT INTO tickets (subject, department, category)"
                                      " VALUES ('Dock flickers', 'IT', 'Hardware') RETURNING id").fetchone()[0]
    users, _ = _wait_for_task(assignment_db, ticket_id)
    assert len(users) == 3
    assert assignment_db.execute("SELECT is_task_allocated FROM tickets WHERE id = %s", (ticket_id,)).fetchone()[0]
