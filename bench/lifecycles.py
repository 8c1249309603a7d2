"""The lifecycle statements at scale: time per run and index use, 100,000 vs 1,000,000 rows, 1% due.

Each statement runs inside a transaction that is rolled back, so every repeat
sees the same table. Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import statistics
import time
from contextlib import closing
from datetime import datetime, timezone

import psycopg
from _support import scratch_database

from ticketflow import queries

DUE = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
REPEATS = 5


def load_events(conn: psycopg.Connection, rows: int) -> None:
    """`rows` events: 1% live and ended before DUE, the rest live and ending later or already done."""
    conn.execute("TRUNCATE events RESTART IDENTITY")
    conn.execute(
        """
        INSERT INTO events (title, start_date, end_date, status)
        SELECT 'event ' || g,
               %(due)s + (CASE WHEN g %% 100 = 0 THEN -2 ELSE 1 END) * (g %% 1000 + 1) * interval '1 minute'
                 - interval '1 hour',
               %(due)s + (CASE WHEN g %% 100 = 0 THEN -2 ELSE 1 END) * (g %% 1000 + 1) * interval '1 minute',
               (ARRAY['confirmed', 'ongoing', 'completed', 'archived'])[1 + g %% 4]
        FROM generate_series(1, %(rows)s) AS g
        """,
        {"due": DUE, "rows": rows},
    )
    conn.execute("VACUUM ANALYZE events")


def measure(conn: psycopg.Connection, query_name: str) -> dict:
    statement = queries.load(query_name)
    timings, changed = [], 0
    for _ in range(REPEATS):
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            changed = conn.execute(statement, {"due_at": DUE}).rowcount
            timings.append((time.perf_counter() - started) * 1000)
    with conn.transaction(force_rollback=True):
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + statement, {"due_at": DUE}).fetchall())
    return {"changed": changed, "median_ms": round(statistics.median(timings), 2),
            "uses_index": "Index" in plan and "Seq Scan" not in plan, "plan": plan.splitlines()[1].strip()}


def main() -> None:
    figures = {}
    with scratch_database() as url, closing(psycopg.connect(url, autocommit=True)) as conn:
        for rows in (100_000, 1_000_000):
            load_events(conn, rows)
            figures[f"event_lifecycle_{rows}"] = result = measure(conn, "events/complete_ended")
            print(f"events={rows:>9,}  completed={result['changed']:>6,}  {result['median_ms']:>8.2f} ms  "
                  f"{result['plan']}", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
