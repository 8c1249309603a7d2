"""Every CONTRACT.md DAG on the CeleryExecutor with a real Redis and two workers, then workers killed mid-task."""

import mailbox
import signal
import threading
import time

import psycopg
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.celery]
ROLE = "IT Support Technician"  # the stand-in TTS answers [3, 6, 9]
MANUAL_REPORT = 1002  # the TDX stand-in's report that no scheduled run reads
SCHEDULED = ("recurring_tickets", "reservation_lifecycle", "event_lifecycle", "tdx_ticket_queue")


def _wait(condition, seconds=120, what="condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"{what} not met after {seconds}s")


@pytest.fixture(scope="module")
def world(celery_stack):
    """What each DAG has to do: a due template, a workflow, a reservation and an event past their time."""
    with psycopg.connect(celery_stack.app_db_url, autocommit=True) as conn:
        workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                " VALUES ('Hardware', 'IT', 'Hardware', true, 'deployed') RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Fix', %s, 1)",
                     (workflow, ROLE))
        template = conn.execute(
            "INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
            " recurrence_every, next_occurrence) VALUES ('Check the backups', 'IT', 'Hardware', true, 'daily', 1,"
            " now() - interval '1 hour') RETURNING id").fetchone()[0]
        customer = conn.execute("INSERT INTO customers (username, first_name, last_name, email) VALUES"
                                " ('lee', 'Lee', 'Ng', 'lee@example.com') RETURNING id").fetchone()[0]
        reservation = conn.execute("INSERT INTO reservations (customer_id, start_time) VALUES"
                                   " (%s, now() - interval '40 minutes') RETURNING id", (customer,)).fetchone()[0]
        conn.execute("UPDATE reservations SET status = 'confirmed' WHERE id = %s", (reservation,))
        event = conn.execute("INSERT INTO events (title, start_date, end_date) VALUES ('Town hall',"
                             " now() - interval '3 hours', now() - interval '1 hour') RETURNING id").fetchone()[0]
        conn.execute("UPDATE events SET status = 'confirmed' WHERE id = %s", (event,))
    return {"template": template, "reservation": reservation, "event": event}


def _received_by(stack, worker: str) -> int:
    return (stack.logs / f"{worker}.log").read_text(errors="replace").count("] received")


def test_every_contract_dag_runs_to_success_on_two_celery_workers(celery_stack, celery_api, world):
    api, db_url = celery_api, celery_stack.app_db_url
    runs = {dag_id: api.trigger(dag_id, **({"conf": {"report_id": MANUAL_REPORT, "dry_run": False}}
                                           if dag_id == "tdx_ticket_queue" else {}))["dag_run_id"]
            for dag_id in SCHEDULED}
    intake = api.trigger("ticket_intake", conf={"subject": "Laptop will not boot", "department": "IT",
                                                "category": "Hardware", "external_id": "CELERY-1"})["dag_run_id"]
    for dag_id, run_id in [*runs.items(), ("ticket_intake", intake)]:
        assert api.wait_for_run(dag_id, run_id, timeout=240)["state"] == "success", dag_id

    with psycopg.connect(db_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM tickets WHERE recurring_parent_id = %s",
                            (world["template"],)).fetchone()[0] == 1
        assert conn.execute("SELECT status FROM reservations WHERE id = %s",
                            (world["reservation"],)).fetchone()[0] == "completed"
        assert conn.execute("SELECT status FROM events WHERE id = %s", (world["event"],)).fetchone()[0] == "completed"
        assert conn.execute("SELECT count(*) FROM meta.daemon_action_log WHERE status = 'completed'").fetchone()[0] > 0
        # The continuous DAGs: every new ticket gets its task, every queued email goes out.
        _wait(lambda: conn.execute("SELECT bool_and(is_task_allocated) AND count(*) = 2 FROM tickets"
                                   " WHERE NOT is_recurring").fetchone()[0], what="tasks for both new tickets")
        _wait(lambda: conn.execute("SELECT count(*) > 0 AND bool_and(status = 'sent') FROM email_outbox"
                                   ).fetchone()[0], what="every email sent")
    for dag_id in ("ticket_task_assignment", "notifications"):
        _wait(lambda: any(r["state"] == "success" for r in api.runs(dag_id)), what=f"a successful {dag_id} run")
    box = mailbox.Maildir(str(celery_stack.mailbox), create=False)
    assert any(box.get_message(key)["To"] == "lee@example.com" for key in box.keys())
    assert all(_received_by(celery_stack, worker) > 0 for worker in celery_stack.worker_names), \
        "both Celery workers should have run tasks"
