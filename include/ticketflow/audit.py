"""The audit of automation runs: one `automation_runs` row per DAG run.

The row is written as `running` in its own transaction before any work, so a
run killed mid-way stays visible. Work happens in units: each unit's changes
and its addition to the run's totals commit in one transaction, so the counts
an operator reads are exactly what was committed, even when a later unit (or
the whole try) fails. A retry of the run adds to the same totals. The run
then ends `success`, or `error` with the message.
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
    """What a run (or one unit of it) did. `details` holds counters (added up) and lists (joined)."""

    processed: int = 0
    changed: int = 0
    skipped: int = 0
    details: dict = field(default_factory=dict)

    def plus(self, other: RunOutcome) -> RunOutcome:
        details = dict(self.details)
        for key, value in other.details.items():
            details[key] = details[key] + value if key in details else value
        return RunOutcome(self.processed + other.processed, self.changed + other.changed,
                          self.skipped + other.skipped, details)


def changed_rows(change: str, ids: list[int]) -> RunOutcome:
    """The outcome of one set-based change: how many rows and which (details `change` and `change_ids`)."""
    return RunOutcome(processed=len(ids), changed=len(ids), details={change: len(ids), f"{change}_ids": ids})


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
    error = NULL,
    status = 'running'
"""

_ADD_TO_TOTALS = """
UPDATE automation_runs
SET processed = processed + %(processed)s, changed = changed + %(changed)s, skipped = skipped + %(skipped)s,
    details = ticketflow_merge_totals(details, %(details)s)
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s
"""

_FINISH = """
UPDATE automation_runs
SET status = %(status)s, finished_at = clock_timestamp(), error = %(error)s
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s
"""


def open_run(conn: psycopg.Connection, window: RunWindow) -> None:
    """Write the run's row as `running`, in its own transaction, before any work."""
    with conn.transaction():
        conn.execute(_START, window.__dict__)


def close_run(conn: psycopg.Connection, window: RunWindow, error: str | None = None) -> None:
    """End the run's row: `success`, or `error` with the message."""
    with conn.transaction():
        conn.execute(_FINISH, {"status": "error" if error else "success", "error": error,
                               "dag_id": window.dag_id, "run_id": window.run_id})


class AuditedRun:
    """One DAG run's audit row and the units of work it is made of; `outcome` is this try's share.

    As a context manager it opens and closes the row around one task. A run
    spread over several tasks (mapped batches) opens it in the first with
    `open_run`, adds units from each, and closes it in the last with `close_run`.
    """

    def __init__(self, conn: psycopg.Connection, window: RunWindow):
        self.conn = conn
        self.window = window
        self.outcome = RunOutcome()

    def __enter__(self) -> AuditedRun:
        open_run(self.conn, self.window)
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        close_run(self.conn, self.window, None if exc is None else f"{type(exc).__name__}: {exc}")

    @contextmanager
    def unit(self) -> Iterator[RunOutcome]:
        """One transaction: the body's changes and the run's new totals commit together, or neither."""
        delta = RunOutcome()
        with self.conn.transaction():
            yield delta
            self.conn.execute(self._add_to_totals, {
                "processed": delta.processed, "changed": delta.changed, "skipped": delta.skipped,
                "details": json.dumps(delta.details, default=str),
                "dag_id": self.window.dag_id, "run_id": self.window.run_id, **self._key,
            })
        self.outcome = self.outcome.plus(delta)

    _add_to_totals = _ADD_TO_TOTALS
    _key: dict = {}


_START_PART = """
INSERT INTO automation_runs AS r
    (dag_id, run_id, data_interval_start, data_interval_end, due_at, try_number, status, parts)
VALUES (%(dag_id)s, %(run_id)s, %(data_interval_start)s, %(data_interval_end)s, %(due_at)s,
        %(try_number)s, 'running', %(parts)s)
ON CONFLICT (dag_id, run_id) DO UPDATE SET
    try_number = greatest(r.try_number, EXCLUDED.try_number),
    parts = EXCLUDED.parts,
    -- A run that had succeeded, or whose plan changed, was cleared: it starts over. Otherwise this part
    -- joins the others, or is a failed part's retry (the run stays `error` until that part succeeds).
    (started_at, finished_at, status, error, parts_done) = (
        SELECT CASE WHEN cleared THEN clock_timestamp() ELSE r.started_at END,
               CASE WHEN cleared THEN NULL ELSE r.finished_at END,
               CASE WHEN cleared THEN 'running' ELSE r.status END,
               CASE WHEN cleared THEN NULL ELSE r.error END,
               CASE WHEN cleared THEN '{}' ELSE r.parts_done END
        FROM (SELECT r.status = 'success' OR r.parts IS DISTINCT FROM EXCLUDED.parts AS cleared) AS run)
"""

# Computed from the row as it is once locked, so parts finishing together both count. Every part done
# succeeds the run, an earlier failure included: that part's retry has just succeeded.
_FINISH_PART = """
UPDATE automation_runs SET
    parts_done = CASE WHEN %(part)s = ANY(parts_done) THEN parts_done ELSE parts_done || %(part)s END,
    status = CASE WHEN cardinality(parts_done) + (%(part)s <> ALL(parts_done))::int >= parts
                  THEN 'success' ELSE status END,
    error = CASE WHEN cardinality(parts_done) + (%(part)s <> ALL(parts_done))::int >= parts
                 THEN NULL ELSE error END,
    finished_at = CASE WHEN cardinality(parts_done) + (%(part)s <> ALL(parts_done))::int >= parts
                       THEN clock_timestamp() ELSE finished_at END
WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s
"""


# A part's units add to its own row: parts working at once never wait for each other's commits on the run's row.
_ADD_TO_PART = """
INSERT INTO automation_run_parts AS p (dag_id, run_id, part, processed, changed, skipped, details)
VALUES (%(dag_id)s, %(run_id)s, %(part)s, %(processed)s, %(changed)s, %(skipped)s, %(details)s)
ON CONFLICT (dag_id, run_id, part) DO UPDATE SET
    processed = p.processed + EXCLUDED.processed, changed = p.changed + EXCLUDED.changed,
    skipped = p.skipped + EXCLUDED.skipped, details = ticketflow_merge_totals(p.details, EXCLUDED.details)
"""

# The totals of a part (or, `part` NULL, of every part) move to the run's row.
_FOLD_PARTS = """
WITH folded AS (
    DELETE FROM automation_run_parts
    WHERE dag_id = %(dag_id)s AND run_id = %(run_id)s AND (%(part)s::integer IS NULL OR part = %(part)s::integer)
    RETURNING processed, changed, skipped, details
),
total AS (
    SELECT sum(processed) AS processed, sum(changed) AS changed, sum(skipped) AS skipped,
           ticketflow_sum_totals(details) AS details
    FROM folded HAVING count(*) > 0
)
UPDATE automation_runs r
SET processed = r.processed + total.processed, changed = r.changed + total.changed,
    skipped = r.skipped + total.skipped, details = ticketflow_merge_totals(r.details, total.details)
FROM total
WHERE r.dag_id = %(dag_id)s AND r.run_id = %(run_id)s
"""


class AuditedPart(AuditedRun):
    """Part `part` of a run done by `parts` mapped tasks at once, with no task before or after them to open or
    close its row: each part opens it (the first creates it), and the last to finish closes it (`success`). A
    part that fails marks the run `error` until its retry succeeds.

    Each unit commits with the part's own totals (`automation_run_parts`), which the part adds to the run's
    row when it ends, succeeded or failed (`mark_failed` does it for a part that was killed).
    """

    _add_to_totals = _ADD_TO_PART

    def __init__(self, conn: psycopg.Connection, window: RunWindow, part: int, parts: int):
        super().__init__(conn, window)
        self.part, self.parts = part, parts
        self._key = {"part": part}

    def __enter__(self) -> AuditedPart:
        with self.conn.transaction():
            self.conn.execute(_START_PART, {**self.window.__dict__, "parts": self.parts})
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        run = {"part": self.part, "dag_id": self.window.dag_id, "run_id": self.window.run_id}
        with self.conn.transaction():
            self.conn.execute(_FOLD_PARTS, run)
            if exc is None:
                self.conn.execute(_FINISH_PART, run)
        if exc is not None:
            close_run(self.conn, self.window, f"{type(exc).__name__}: {exc}")


def run_audited(
    conn: psycopg.Connection, window: RunWindow, work: Callable[[psycopg.Connection, RunWindow], RunOutcome]
) -> RunOutcome:
    """Do one unit of set-based work under the audit and return what it did."""
    with AuditedRun(conn, window) as run:
        with run.unit() as delta:
            result = work(conn, window)
            delta.processed, delta.changed, delta.skipped = result.processed, result.changed, result.skipped
            delta.details = result.details
    return run.outcome


def mark_failed(conn: psycopg.Connection, dag_id: str, run_id: str, error: str) -> None:
    """Close a run that died without closing its own row (killed, timed out)."""
    with conn.transaction():
        conn.execute(_FOLD_PARTS, {"dag_id": dag_id, "run_id": run_id, "part": None})  # a killed part's totals
        conn.execute(
            "UPDATE automation_runs SET status = 'error', finished_at = clock_timestamp(), error = %s"
            " WHERE dag_id = %s AND run_id = %s AND status = 'running'",
            (error, dag_id, run_id),
        )
