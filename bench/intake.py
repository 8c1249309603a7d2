"""Intake at volume: the bulk route against the DAG, and 10,000 tickets to their tasks.

Tickets per second through `POST /ticketflow/tickets` and through the `ticket_intake` DAG, and the time from the
first of 10,000 tickets to the last one's task.

The local stack as `make run` starts it (LocalExecutor, own ports and data), its TTS stand-in answering 8
more roles of 5 users, one workflow per role; tickets spread evenly over the roles. One client, one request
at a time; assignment runs meanwhile, as it would (every insert wakes it):

(a) the DAG path: 200 tickets, one `ticket_intake` run each through the REST API (the way the seed's
    `receive_ticket` callers would move over), from the first trigger until the 200th ticket exists;
(b) the bulk path: 3,000 tickets in requests of 100, and 3,000 in requests of 1,000, each from the first
    request until the last answer;
(c) 10,000 tickets in requests of 100: from the first request until the last ticket has its task.

Between phases the stack drains (every ticket has its task). Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from contextlib import closing
from pathlib import Path

import psycopg
import requests
from _support import assignment_roles

from devstack import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.stack import LocalStack, Ports
from devstack.standins import EXTRA_ROLES_VARIABLE
from ticketflow.settings import PROJECT_ROOT

ROLES = assignment_roles(8)
DAG_TICKETS, BULK_TICKETS, FLOOD = 200, 3000, 10_000
TIMEOUT_SECONDS = 900


def _ticket(n: int) -> dict:
    return {"subject": f"bench {n}", "department": "Bench", "category": f"cat {n % len(ROLES)}"}


def _until(condition, what: str) -> float:
    """Seconds on the monotonic clock when `condition()` first held."""
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not reached in {TIMEOUT_SECONDS} s")
        time.sleep(0.05)
    return time.monotonic()


class Bench:
    def __init__(self, stack: LocalStack, conn: psycopg.Connection):
        self.stack, self.conn = stack, conn
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {stack.token()}"
        self.sent = 0

    def count(self, sql: str) -> int:
        return self.conn.execute(sql).fetchone()[0]

    def drained(self) -> bool:
        return self.count("SELECT count(*) FROM tickets WHERE NOT is_task_allocated") == 0

    def post(self, batch_size: int, total: int) -> tuple[float, float]:
        """`total` tickets in requests of `batch_size`, one after another: (start, last answer)."""
        started = time.monotonic()
        for first in range(0, total, batch_size):
            answer = self.session.post(f"{self.stack.api_url}/ticketflow/tickets", timeout=120, json={
                "tickets": [_ticket(self.sent + n) for n in range(first, min(first + batch_size, total))]})
            answer.raise_for_status()
        self.sent += total
        return started, time.monotonic()

    def dag_path(self) -> dict:
        before = self.count("SELECT count(*) FROM tickets")
        started = time.monotonic()
        for n in range(DAG_TICKETS):
            answer = self.session.post(f"{self.stack.api_url}/api/v2/dags/ticket_intake/dagRuns", timeout=60,
                                       json={"logical_date": None, "conf": _ticket(-1 - n)})
            answer.raise_for_status()
        triggered = time.monotonic()
        done = _until(lambda: self.count("SELECT count(*) FROM tickets") - before >= DAG_TICKETS, "DAG intake")
        return {"tickets": DAG_TICKETS, "seconds": round(done - started, 1),
                "tickets_per_second": round(DAG_TICKETS / (done - started), 1),
                "seconds_to_trigger_all": round(triggered - started, 1)}

    def bulk_path(self, batch_size: int) -> dict:
        started, answered = self.post(batch_size, BULK_TICKETS)
        return {"tickets": BULK_TICKETS, "batch": batch_size, "seconds": round(answered - started, 2),
                "tickets_per_second": round(BULK_TICKETS / (answered - started))}

    def flood(self) -> dict:
        started, answered = self.post(100, FLOOD)
        done = _until(self.drained, "a task for every ticket")
        return {"tickets": FLOOD, "batch": 100, "seconds_to_last_answer": round(answered - started, 1),
                "seconds_to_last_task": round(done - started, 1),
                "tasks_per_second": round(FLOOD / (done - started))}


def main() -> None:
    os.environ[EXTRA_ROLES_VARIABLE] = json.dumps(ROLES)
    figures: dict = {"roles": len(ROLES)}
    with tempfile.TemporaryDirectory(prefix="ticketflow-bench-") as home:
        postgres = EmbeddedPostgres(PROJECT_ROOT / ".local" / "bench-stack-pg", free_port())
        postgres.start()
        app_db_url = postgres.ensure_database("ticketflow_bench", fresh=True)
        stack = LocalStack(Path(home), Ports.free(), postgres, app_db_url, airflow_db="airflow_bench",
                           fresh_airflow_db=True, demo_data=False)
        try:
            stack.prepare()
            stack.start()
            stack.wait_for_dags({"ticket_intake", "ticket_task_assignment"})
            with closing(psycopg.connect(app_db_url, autocommit=True)) as conn:
                for index, role in enumerate(ROLES):
                    workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published,"
                                            " status) VALUES (%s, 'Bench', %s, true, 'deployed') RETURNING id",
                                            (f"wf {index}", f"cat {index}")).fetchone()[0]
                    conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order)"
                                 " VALUES (%s, 'first', %s, 1)", (workflow, role))
                bench = Bench(stack, conn)
                bench.post(100, 100)  # warm: the API server builds the plugin's app on its first request
                _until(bench.drained, "warm-up drained")
                figures["dag_path"] = bench.dag_path()
                print(f"dag path: {figures['dag_path']}", flush=True)
                _until(bench.drained, "drained")
                figures["bulk_path_100"] = bench.bulk_path(100)
                print(f"bulk path, 100 a request: {figures['bulk_path_100']}", flush=True)
                _until(bench.drained, "drained")
                figures["bulk_path_1000"] = bench.bulk_path(1000)
                print(f"bulk path, 1,000 a request: {figures['bulk_path_1000']}", flush=True)
                _until(bench.drained, "drained")
                figures["flood"] = bench.flood()
                print(f"10,000 tickets to their tasks: {figures['flood']}", flush=True)
        finally:
            stack.stop()
            postgres.stop()
    figures["bulk_vs_dag"] = round(figures["bulk_path_100"]["tickets_per_second"]
                                   / figures["dag_path"]["tickets_per_second"])
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
