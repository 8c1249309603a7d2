"""The audit of automation runs: one `automation_runs` row per DAG run.

The row is written as `running` in its own transaction before the work
starts, so a run killed mid-way stays visible. The work and its `success`
row then commit together: the counts an operator reads are exactly what
changed. A failure rolls the work back and records the error instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class RunWindow:
    """What one DAG run is about: its identity and the instant it decides "due" against."""

    dag_id: str
    run_id: str
    due_at: datetime
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    try_number: int = 1


@dataclass
class RunOutcome:
    processed: int = 0
    changed: int = 0
    details: dict = field(default_factory=dict)


_START = """
INSERT INTO automation_runs
    (dag_id, run_id, data_interval_start, data_interval_end, due_at, try_number, status)
VALUES (%(dag_id)s, %(run_id)s, %(data_interval_start)s, %(data_interval_end)s, %(due_at)s,
        %(try_number)s, 'running')
ON CONFLICT (dag_id, run_id) DO UPDATE SET
    data_interval_start = EXCLUDED.data_interval_start,
    data_interval_end = EXCLUDED.data_interval_end,
    due_at = EXCLUDED.due_at,
    try_number = EXCLUDED.try_number,
    started_at = clock_timestamp(),
    finished_at = NULL,
    processed = 0, changed = 0, details = '{}', error = NULL,
    status = 'running'
"""

_FINISH = """
UPDATE automation_runs
SET status = %(status)s, finished_at = clock_timestamp(),
    processed = %(processed)s, changed = %(changed)s, details = %(details)s, error = %(error)s
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s
"""


def _finish(conn: psycopg.Connection, window: RunWindow, status: str, outcome: RunOutcome, error: str | None) -> None:
    conn.execute(
        _FINISH,
        {
            "status": status,
            "processed": outcome.processed,
            "changed": outcome.changed,
            "details": json.dumps(outcome.details, default=str),
            "error": error,
            "dag_id": window.dag_id,
            "run_id": window.run_id,
        },
    )


@contextmanager
def audited_run(conn: psycopg.Connection, window: RunWindow) -> Iterator[RunOutcome]:
    """Run the body in one transaction and record its outcome in `automation_runs`."""
    with conn.transaction():
        conn.execute(_START, window.__dict__)
    outcome = RunOutcome()
    try:
        with conn.transaction():
            yield outcome
            _finish(conn, window, "success", outcome, None)
    except Exception as exc:
        with conn.transaction():
            _finish(conn, window, "error", RunOutcome(), f"{type(exc).__name__}: {exc}")
        raise


def run_audited(
    conn: psycopg.Connection, window: RunWindow, work: Callable[[psycopg.Connection, RunWindow], RunOutcome]
) -> RunOutcome:
    """Do one unit of set-based work under the audit and return what it did."""
    with audited_run(conn, window) as outcome:
        result = work(conn, window)
        outcome.processed, outcome.changed, outcome.details = result.processed, result.changed, result.details
    return outcome
