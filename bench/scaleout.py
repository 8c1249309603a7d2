"""Scale-out on Celery: 20,000 due recurring tickets plus 5,000 new tickets to assign, on 1 worker, then on 2.

Each round starts a fresh `make run-celery` stack (its own embedded PostgreSQL, Redis, the Airflow
components, N Celery workers), loads a workflow and 20,000 due templates, then at once inserts 5,000 new
tickets and triggers `recurring_tickets`. The clock stops when every ticket has its task: the 5,000 new
ones and the 20,000 occurrences the run generated (they start unallocated, like any new ticket).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import psycopg
import requests

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from devstack import free_port  # noqa: E402
from devstack.postgres import EmbeddedPostgres  # noqa: E402
from devstack.stack import LocalStack, Ports  # noqa: E402
from ticketflow.migrate import migrate  # noqa: E402

TEMPLATES = 20_000
NEW_TICKETS = 5_000
ROLE = "IT Support Technician"  # the stand-in TTS answers three users for it
TIMEOUT_SECONDS = 900


def _load(conn: psycopg.Connection) -> None:
    workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                            " VALUES ('Bench', 'Bench', 'Hardware', true, 'deployed') RETURNING id").fetchone()[0]
    conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Fix', %s, 1)",
                 (workflow, ROLE))
    conn.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                 " recurrence_every, next_occurrence) SELECT 'template ' || g, 'Bench', 'Hardware', true, 'daily', 1,"
                 " now() - interval '1 hour' FROM generate_series(1, %s) AS g", (TEMPLATES,))


def _round(workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ticketflow-scaleout-") as home:
        postgres = EmbeddedPostgres(Path(home) / "pg", free_port())
        postgres.start()
        app_db_url = postgres.ensure_database("ticketflow")
        migrate(app_db_url)
        stack = LocalStack(Path(home), Ports.free(), postgres, app_db_url, demo_data=False, celery_workers=workers)
        try:
            stack.prepare()
            stack.start()
            stack.wait_for_dags({"recurring_tickets", "ticket_task_assignment"})
            headers = {"Authorization": f"Bearer {stack.token()}"}
            with closing(psycopg.connect(app_db_url, autocommit=True)) as conn:
                _load(conn)
                started = time.perf_counter()
                conn.execute("INSERT INTO tickets (subject, department, category) SELECT 'new ' || g, 'Bench',"
                             " 'Hardware' FROM generate_series(1, %s) AS g", (NEW_TICKETS,))
                answer = requests.post(f"{stack.api_url}/api/v2/dags/recurring_tickets/dagRuns", headers=headers,
                                       json={"logical_date": None}, timeout=30)
                answer.raise_for_status()
                expected = TEMPLATES + NEW_TICKETS
                while (tasks := conn.execute("SELECT count(*) FROM tasks").fetchone()[0]) < expected:
                    if time.perf_counter() - started > TIMEOUT_SECONDS:
                        raise RuntimeError(f"{tasks} of {expected} tasks after {TIMEOUT_SECONDS} s")
                    time.sleep(0.5)
                elapsed = time.perf_counter() - started
                occurrences = conn.execute("SELECT count(*) FROM tickets WHERE recurring_parent_id IS NOT NULL"
                                           ).fetchone()[0]
            received = {name: (stack.logs / f"{name}.log").read_text(errors="replace").count("] received")
                        for name in stack.worker_names}
        finally:
            stack.stop()
            postgres.stop()
    return {"workers": workers, "seconds": round(elapsed, 1), "tasks": tasks, "occurrences": occurrences,
            "tickets_per_second": round(tasks / elapsed), "celery_tasks_received": received}


def main() -> None:
    one = _round(1)
    print(f"1 worker:  {one}", flush=True)
    two = _round(2)
    print(f"2 workers: {two}", flush=True)
    print(json.dumps({"templates": TEMPLATES, "new_tickets": NEW_TICKETS, "one_worker": one, "two_workers": two,
                      "speedup": round(one["seconds"] / two["seconds"], 2)}))


if __name__ == "__main__":
    main()
