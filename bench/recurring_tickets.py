"""Recurring tickets at scale: 100,000 due templates, our run against the seed's row-by-row loop.

Both run on the same database in the same process, from the same starting
state: every template due once. The server keeps PostgreSQL's default
durability (fsync on), as in production. The baseline does what the seed's
Celery task did: select the due templates, then for each one insert a copy
and update its next_occurrence, each statement committed on its own. For
context, the "write floor" is the time PostgreSQL here needs just to write
the same rows: one INSERT ... SELECT of N copies and one UPDATE of N
templates, with no schedule arithmetic at all. Prints one JSON object on its
last line.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import closing
from datetime import datetime, timedelta, timezone

import psycopg
from _support import scratch_database

from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.recurring import create_due_occurrences

TEMPLATES = int(os.environ.get("BENCH_TEMPLATES", 100_000))
DUE = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
ZONES = ["UTC", "America/Toronto", "Europe/London", "Australia/Sydney"]
STEP = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


def reset(conn: psycopg.Connection) -> None:
    """Every template due once, no occurrence created yet."""
    conn.execute("DELETE FROM tickets WHERE recurring_parent_id IS NOT NULL")
    conn.execute("UPDATE tickets SET next_occurrence = recurrence_start WHERE is_recurring")
    conn.execute("VACUUM ANALYZE tickets")


def load(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        INSERT INTO tickets (subject, description, department, category, priority, requester_email,
                             is_recurring, recurrence_interval, recurrence_every, recurrence_timezone,
                             recurrence_start)
        SELECT 'Template ' || g, 'Recurring check number ' || g, 'IT', 'Ops', 'medium', 'ops@example.com',
               true, (ARRAY['daily', 'weekly'])[1 + g %% 2], 1, (%(zones)s::text[])[1 + g %% 4],
               %(due)s - (g %% 240) * interval '1 minute'
        FROM generate_series(1, %(n)s) AS g
        """,
        {"n": TEMPLATES, "due": DUE, "zones": ZONES},
    )


def ticketflow_run(conn: psycopg.Connection) -> tuple[float, int]:
    started = time.perf_counter()
    with AuditedRun(conn, RunWindow("recurring_tickets", "bench", DUE)) as run:
        create_due_occurrences(run, "UTC")
    return time.perf_counter() - started, run.outcome.changed


def seed_baseline(conn: psycopg.Connection) -> tuple[float, int]:
    """The seed's loop: one INSERT and one UPDATE per due template, each its own transaction."""
    started = time.perf_counter()
    due = conn.execute(
        "SELECT id, subject, description, department, category, sub_category, priority, requester_email,"
        " recurrence_interval, next_occurrence FROM tickets"
        " WHERE is_recurring AND NOT archived AND next_occurrence <= %s", (DUE,)).fetchall()
    created = 0
    for (template_id, subject, description, department, category, sub_category, priority, requester,
         interval, next_occurrence) in due:
        conn.execute(
            "INSERT INTO tickets (subject, description, department, category, sub_category, priority,"
            " requester_email, recurring_parent_id, occurrence_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (subject, description, department, category, sub_category, priority, requester, template_id,
             next_occurrence))
        conn.execute("UPDATE tickets SET next_occurrence = %s WHERE id = %s",
                     (next_occurrence + STEP[interval], template_id))
        created += 1
    return time.perf_counter() - started, created


def write_floor(conn: psycopg.Connection) -> float:
    started = time.perf_counter()
    with conn.transaction():
        conn.execute("INSERT INTO tickets (subject, department, category, recurring_parent_id, occurrence_at)"
                     " SELECT subject, department, category, id, next_occurrence FROM tickets WHERE is_recurring")
        conn.execute("UPDATE tickets SET next_occurrence = next_occurrence + interval '1 day' WHERE is_recurring")
    return time.perf_counter() - started


def main() -> None:
    with scratch_database(durable=True) as url, closing(psycopg.connect(url, autocommit=True)) as conn:
        load(conn)
        reset(conn)
        floor = write_floor(conn)
        print(f"write floor: {TEMPLATES:,} inserts + {TEMPLATES:,} updates in {floor:.2f} s", flush=True)
        reset(conn)
        ours, ours_created = ticketflow_run(conn)
        print(f"ticketflow: {ours_created:,} occurrences in {ours:.2f} s", flush=True)
        reset(conn)
        baseline, baseline_created = seed_baseline(conn)
        print(f"seed loop:  {baseline_created:,} occurrences in {baseline:.2f} s", flush=True)
    figures = {
        "templates": TEMPLATES,
        "ticketflow_seconds": round(ours, 3),
        "ticketflow_created": ours_created,
        "ticketflow_occurrences_per_second": round(ours_created / ours),
        "baseline_seconds": round(baseline, 3),
        "baseline_created": baseline_created,
        "speedup": round(baseline / ours, 1),
        "write_floor_seconds": round(floor, 3),
        "best_possible_speedup": round(baseline / floor, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
