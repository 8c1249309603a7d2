"""Automatic task creation: latency from insert to task, and throughput.

(a) Latency: the local stack started as `make run` starts it (own ports and
    data), 50 tickets inserted one at a time with plain SQL; for each, the time
    until its task row exists. Prints p50 and p95.
(b) Throughput: 10,000 new tickets across 20 roles, allocated by the
    assignment code against real PostgreSQL and the real TTS stand-in; wall
    time and the number of TTS calls (one per role per batch at most).

Prints one JSON object on its last line. BENCH_SKIP_LATENCY=1 skips (a).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from _support import scratch_database

from devstack import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.stack import LocalStack, Ports, connections
from devstack.standins import DEMO_ROLES, TtsStandIn
from ticketflow.assignment import BATCH_SIZE, assign_waiting_tickets
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.migrate import migrate
from ticketflow.settings import PROJECT_ROOT
from ticketflow.tts import TtsClient

TICKETS, ROLES, LATENCY_TICKETS = 10_000, 20, 50


def add_workflows(conn: psycopg.Connection, roles: list[str]) -> None:
    for index, role in enumerate(roles):
        workflow = conn.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                                " VALUES (%s, 'Bench', %s, true, 'deployed') RETURNING id",
                                (f"wf {index}", f"cat {index}")).fetchone()[0]
        conn.execute("INSERT INTO steps (workflow_id, name, role_name, step_order) VALUES (%s, 'first', %s, 1)",
                     (workflow, role))


def throughput() -> dict:
    roles = {f"role {i}": list(range(i * 10, i * 10 + 7)) for i in range(ROLES)}
    tts = TtsStandIn(roles).start()
    for name, value in connections(replace(Ports(), tts=tts.port), "postgresql://unused@127.0.0.1:1/x").items():
        os.environ[name] = value
    try:
        with scratch_database() as url, closing(psycopg.connect(url, autocommit=True)) as conn:
            add_workflows(conn, list(roles))
            conn.execute("INSERT INTO tickets (subject, department, category)"
                         " SELECT 'ticket ' || g, 'Bench', 'cat ' || (g %% %s) FROM generate_series(1, %s) g",
                         (ROLES, TICKETS))
            started = time.perf_counter()
            with AuditedRun(conn, RunWindow("ticket_task_assignment", "bench", datetime.now(UTC))) as run:
                assign_waiting_tickets(run, TtsClient().users_for_role, max_assignments=3)
            elapsed = time.perf_counter() - started
            tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    finally:
        tts.stop()
    batches = -(-TICKETS // BATCH_SIZE)
    return {"tickets": TICKETS, "roles": ROLES, "tasks": tasks, "seconds": round(elapsed, 2),
            "tickets_per_second": round(tasks / elapsed), "tts_calls": len(tts.calls), "batches": batches,
            "tts_calls_per_role_per_batch": round(len(tts.calls) / (ROLES * batches), 2)}


def latency() -> dict:
    with tempfile.TemporaryDirectory(prefix="ticketflow-bench-") as home:
        postgres = EmbeddedPostgres(PROJECT_ROOT / ".local" / "bench-stack-pg", free_port())
        postgres.start()
        app_db_url = postgres.ensure_database("ticketflow_bench", fresh=True)
        migrate(app_db_url)
        stack = LocalStack(Path(home), Ports.free(), postgres, app_db_url, airflow_db="airflow_bench",
                           fresh_airflow_db=True, demo_data=False)
        try:
            stack.prepare()
            stack.start()
            stack.wait_for_dags({"ticket_task_assignment"})
            samples = []
            with closing(psycopg.connect(app_db_url, autocommit=True)) as conn:
                add_workflows(conn, [next(iter(DEMO_ROLES))])
                for i in range(LATENCY_TICKETS):
                    started = time.perf_counter()
                    ticket = conn.execute("INSERT INTO tickets (subject, department, category)"
                                          " VALUES (%s, 'Bench', 'cat 0') RETURNING id",
                                          (f"latency {i}",)).fetchone()[0]
                    while conn.execute("SELECT 1 FROM tasks WHERE ticket_id = %s", (ticket,)).fetchone() is None:
                        if time.perf_counter() - started > 120:
                            raise RuntimeError(f"ticket {ticket} got no task in 120 s")
                        time.sleep(0.05)
                    samples.append(time.perf_counter() - started)
        finally:
            stack.stop()
            postgres.stop()
    ordered = sorted(samples)
    return {"tickets": len(samples), "p50_seconds": round(statistics.median(ordered), 2),
            "p95_seconds": round(ordered[int(0.95 * (len(ordered) - 1))], 2), "max_seconds": round(ordered[-1], 2)}


def main() -> None:
    figures = {"throughput": throughput()}
    print(f"throughput: {figures['throughput']}", flush=True)
    if not os.environ.get("BENCH_SKIP_LATENCY"):
        figures["latency"] = latency()
        print(f"latency: {figures['latency']}", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
