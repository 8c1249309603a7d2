"""Scale-out on Celery: 20,000 due recurring tickets plus 5,000 new tickets to assign, on 1 worker, then on 2.

Each round starts a fresh `make run-celery` stack (its own embedded PostgreSQL, Redis, the Airflow
components, N Celery workers of the shared settings' concurrency), its TTS stand-in answering 8 more roles of 5
users, one workflow per role. It loads 20,000 due templates spread over the roles, then at once inserts 5,000
new tickets (spread too) and triggers `recurring_tickets`. The clock stops when every ticket has its task: the
5,000 new ones and the 20,000 occurrences the run generated.

Per round it prints the wall time; the `assign_tasks` task instances that ran (from the REST API: how many,
on which worker, and how many ran at once on average: their summed durations over the span from the first
start to the last end); and how busy the CPUs were meanwhile, overall and per process group (PostgreSQL,
scheduler, workers with their task processes, ...; "other" is everything else on the machine).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import requests
from _support import CpuMeter, assignment_roles

from devstack import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.stack import LocalStack, Ports
from devstack.standins import EXTRA_ROLES_VARIABLE
from devstack.workers import workers_by_task_instance
from ticketflow.migrate import migrate

TEMPLATES = 20_000
NEW_TICKETS = 5_000
ROLES = assignment_roles(8)
TIMEOUT_SECONDS = 900


def _load(conn: psycopg.Connection) -> None:
    for index, role in enumerate(ROLES):
        workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                " VALUES (%s, 'Bench', %s, true, 'deployed') RETURNING id",
                                (f"wf {index}", f"cat {index}")).fetchone()[0]
        conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'Fix', %s, 1)",
                     (workflow, role))
    conn.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                 " recurrence_every, next_occurrence) SELECT 'template ' || g, 'Bench', 'cat ' || (g %% %s), true,"
                 " 'daily', 1, now() - interval '1 hour' FROM generate_series(1, %s) AS g", (len(ROLES), TEMPLATES))


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _assignment_task_instances(stack: LocalStack, headers: dict, since: datetime) -> dict:
    """The `assign_tasks` instances that started since `since`: how many, where, and how many ran at once."""
    answer = requests.get(f"{stack.api_url}/api/v2/dags/ticket_task_assignment/dagRuns/~/taskInstances",
                          headers=headers, timeout=30, params={"task_id": "assign_tasks", "limit": 1000,
                                                               "start_date_gte": since.isoformat()})
    answer.raise_for_status()
    instances = [ti for ti in answer.json()["task_instances"] if ti["start_date"] and ti["end_date"]]
    if not instances:
        return {"task_instances": 0}
    spans = [(_parse(ti["start_date"]), _parse(ti["end_date"])) for ti in instances]
    first, last = min(start for start, _ in spans), max(end for _, end in spans)
    busy = sum((end - start).total_seconds() for start, end in spans)
    ran_by = workers_by_task_instance(stack)
    per_worker = {name: sum(ran_by.get(ti["id"]) == name for ti in instances) for name in stack.worker_names}
    return {"task_instances": len(instances), "runs": len({ti["dag_run_id"] for ti in instances}),
            "per_worker": per_worker, "busy_seconds": round(busy, 1),
            "span_seconds": round((last - first).total_seconds(), 1),
            "running_at_once": round(busy / max((last - first).total_seconds(), 1e-9), 2)}


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
            postmaster = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
            groups = {name: [pid] for name, pid in stack.pids.items() if name not in stack.worker_names}
            meter = CpuMeter({**groups, "workers": [stack.pids[name] for name in stack.worker_names],
                              "postgres": [postmaster]}, alone={"bench": os.getpid()})
            with closing(psycopg.connect(app_db_url, autocommit=True)) as conn:
                _load(conn)
                since = datetime.now(UTC)
                meter.start()
                started = time.perf_counter()
                conn.execute("INSERT INTO tickets (subject, department, category) SELECT 'new ' || g, 'Bench',"
                             " 'cat ' || (g %% %s) FROM generate_series(1, %s) AS g", (len(ROLES), NEW_TICKETS))
                answer = requests.post(f"{stack.api_url}/api/v2/dags/recurring_tickets/dagRuns", headers=headers,
                                       json={"logical_date": None}, timeout=30)
                answer.raise_for_status()
                expected = TEMPLATES + NEW_TICKETS
                while (tasks := conn.execute("SELECT count(*) FROM tasks").fetchone()[0]) < expected:
                    if time.perf_counter() - started > TIMEOUT_SECONDS:
                        raise RuntimeError(f"{tasks} of {expected} tasks after {TIMEOUT_SECONDS} s")
                    time.sleep(0.5)
                elapsed = time.perf_counter() - started
                cpu = meter.stop()
                occurrences = conn.execute("SELECT count(*) FROM tickets WHERE recurring_parent_id IS NOT NULL"
                                           ).fetchone()[0]
            time.sleep(3)  # the last task instances report their end
            assignment = _assignment_task_instances(stack, headers, since)
        finally:
            stack.stop()
            postgres.stop()
    return {"workers": workers, "seconds": round(elapsed, 1), "tasks": tasks, "occurrences": occurrences,
            "tickets_per_second": round(tasks / elapsed), "assignment": assignment, "cpu": cpu}


def main() -> None:
    os.environ[EXTRA_ROLES_VARIABLE] = json.dumps(ROLES)
    one = _round(1)
    print(f"1 worker:  {one}", flush=True)
    two = _round(2)
    print(f"2 workers: {two}", flush=True)
    print(json.dumps({"templates": TEMPLATES, "new_tickets": NEW_TICKETS, "roles": len(ROLES), "one_worker": one,
                      "two_workers": two, "speedup": round(one["seconds"] / two["seconds"], 2)}))


if __name__ == "__main__":
    main()
