"""Recurring tickets at scale: 100,000 due templates, our run against the seed's row-by-row loop.

Both run on the same database in the same process, from the same starting
state: every template due once. The server keeps PostgreSQL's default
durability (fsync on), as in production. The baseline does what the seed's
Celery task did: select the due templates, then for each one insert a copy
and update its next_occurrence, each statement committed on its own. For
context, the "write floor" is the time PostgreSQL here needs just to write
the same rows: one INSERT ... SELECT of N copies and one UPDATE of N
templates, with no schedule arithmetic at all. Both ours and the floor are
also measured in two concurrent sessions (SKIP LOCKED splits the templates;
the floor splits them by id), as this machine has 2 cores. The "claim floor"
is ours without the schedule: the same batches, claim (SKIP LOCKED),
exactly-once insert and pointer move, the pointer simply + 1 day: what exactly
once costs before any date arithmetic. After each run the database is checked:
one ticket per template, none twice, no template still due. Prints ours
divided by the claim floor (the target is at most 2.0) and one JSON object on
its last line. The baseline and the floors write template pointers directly,
which only the job may: their sessions say they are the job
(`ticketflow.recurring_engine`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta

import psycopg
from _support import scratch_database

from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.recurring import DEFAULT_BATCH_SIZE, create_due_occurrences

TEMPLATES = int(os.environ.get("BENCH_TEMPLATES", 100_000))
DUE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ZONES = ["UTC", "America/Toronto", "Europe/London", "Australia/Sydney"]
STEP = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


def as_the_job(conn: psycopg.Connection) -> psycopg.Connection:
    """A session that may write template pointers, as the job's transactions may."""
    conn.execute("SET ticketflow.recurring_engine = 'on'")
    return conn


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


def in_sessions(url: str, sessions: int, work) -> float:
    """`work(conn, session)` on `sessions` connections at once; the wall time until all are done."""
    connections = [as_the_job(psycopg.connect(url, autocommit=True)) for _ in range(sessions)]
    errors: list[BaseException] = []

    def run(session: int) -> None:
        try:
            work(connections[session], session)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(session,)) for session in range(sessions)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    for conn in connections:
        conn.close()
    if errors:
        raise errors[0]
    return elapsed


def ticketflow_run(url: str, sessions: int) -> float:
    def work(conn: psycopg.Connection, session: int) -> None:
        with AuditedRun(conn, RunWindow("recurring_tickets", f"bench-{sessions}-{session}", DUE)) as run:
            create_due_occurrences(run, "UTC")
    return in_sessions(url, sessions, work)


def check(conn: psycopg.Connection) -> int:
    """The run did its job: one ticket per template, none twice, no template still due. Returns the tickets."""
    created, parents, still_due = conn.execute(
        "SELECT (SELECT count(*) FROM tickets WHERE recurring_parent_id IS NOT NULL),"
        " (SELECT count(DISTINCT recurring_parent_id) FROM tickets),"
        " (SELECT count(*) FROM tickets WHERE is_recurring AND next_occurrence <= %s)", (DUE,)).fetchone()
    if not created == parents == TEMPLATES or still_due:
        raise AssertionError(f"{created} tickets for {parents} templates, {still_due} still due")
    return created


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


def write_floor(url: str, sessions: int) -> float:
    """The same rows ours writes (every copied column, the dated subject), with no arithmetic."""
    def work(conn: psycopg.Connection, session: int) -> None:
        mine = {"sessions": sessions, "session": session}
        with conn.transaction():
            conn.execute(
                "INSERT INTO tickets (subject, description, department, category, sub_category, priority,"
                " requester_email, recurring_parent_id, occurrence_at)"
                " SELECT subject || ' (2026-06-01)', description, department, category, sub_category, priority,"
                " requester_email, id, next_occurrence FROM tickets"
                " WHERE is_recurring AND id %% %(sessions)s = %(session)s", mine)
            conn.execute("UPDATE tickets SET next_occurrence = next_occurrence + interval '1 day'"
                         " WHERE is_recurring AND id %% %(sessions)s = %(session)s", mine)
    return in_sessions(url, sessions, work)


CLAIM_FLOOR = """
WITH claimed AS (
    SELECT id, next_occurrence, subject, description, department, category, sub_category, priority, requester_email
    FROM tickets
    WHERE is_recurring AND NOT archived AND recurrence_error IS NULL AND paused_at IS NULL
      AND next_occurrence <= %(due)s
    ORDER BY next_occurrence, id
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
),
created AS (
    INSERT INTO tickets (subject, description, department, category, sub_category, priority, requester_email,
                         recurring_parent_id, occurrence_at)
    SELECT subject || ' (2026-06-01)', description, department, category, sub_category, priority, requester_email,
           id, next_occurrence
    FROM claimed
    ORDER BY id
    ON CONFLICT (recurring_parent_id, occurrence_at) WHERE recurring_parent_id IS NOT NULL DO NOTHING
),
advanced AS (  -- the templates reached by primary key, as ours does
    UPDATE tickets t SET next_occurrence = c.next_occurrence + interval '1 day'
    FROM claimed c WHERE t.id = c.id AND t.id = ANY (ARRAY(SELECT id FROM claimed))
)
SELECT count(*) FROM claimed
"""


def claim_floor(url: str, sessions: int) -> float:
    """Ours without the schedule: the same claim (SKIP LOCKED), exactly-once insert and pointer move, + 1 day."""
    def work(conn: psycopg.Connection, session: int) -> None:
        while True:
            with conn.transaction():
                claimed = conn.execute(CLAIM_FLOOR, {"due": DUE, "batch": DEFAULT_BATCH_SIZE}).fetchone()[0]
            if claimed < DEFAULT_BATCH_SIZE:
                return
    return in_sessions(url, sessions, work)


def main() -> None:
    with scratch_database(durable=True) as url, closing(as_the_job(psycopg.connect(url, autocommit=True))) as conn:
        load(conn)
        floor, claiming, ours, created = {}, {}, {}, {}
        for sessions in (1, 2):
            reset(conn)
            floor[sessions] = write_floor(url, sessions)
            print(f"write floor, {sessions} session(s): {TEMPLATES:,} inserts + {TEMPLATES:,} updates"
                  f" in {floor[sessions]:.2f} s", flush=True)
            reset(conn)
            claiming[sessions] = claim_floor(url, sessions)
            check(conn)
            print(f"claim floor, {sessions} session(s): {claiming[sessions]:.2f} s", flush=True)
        for sessions in (1, 2):
            reset(conn)
            ours[sessions] = ticketflow_run(url, sessions)
            created[sessions] = check(conn)
            print(f"ticketflow, {sessions} session(s): {created[sessions]:,} occurrences in {ours[sessions]:.2f} s",
                  flush=True)
        reset(conn)
        baseline, _ = seed_baseline(conn)
        baseline_created = check(conn)
        print(f"seed loop:  {baseline_created:,} occurrences in {baseline:.2f} s", flush=True)
    print(f"ours / claim floor, 1 session: {ours[1] / claiming[1]:.2f}x (target <= 2.0);"
          f" 2 sessions: {ours[2] / claiming[2]:.2f}x", flush=True)
    figures = {
        "templates": TEMPLATES,
        "ours_over_claim_floor": round(ours[1] / claiming[1], 2),
        "ticketflow_seconds": round(ours[1], 3),
        "ticketflow_created": created[1],
        "ticketflow_occurrences_per_second": round(created[1] / ours[1]),
        "baseline_seconds": round(baseline, 3),
        "baseline_created": baseline_created,
        "speedup": round(baseline / ours[1], 1),
        "write_floor_seconds": round(floor[1], 3),
        "best_possible_speedup": round(baseline / floor[1], 1),
        "claim_floor_seconds": round(claiming[1], 3),
        "claim_floor_speedup": round(baseline / claiming[1], 1),
        "two_sessions": {"ticketflow_seconds": round(ours[2], 3), "speedup": round(baseline / ours[2], 1),
                         "write_floor_seconds": round(floor[2], 3),
                         "best_possible_speedup": round(baseline / floor[2], 1),
                         "claim_floor_seconds": round(claiming[2], 3),
                         "claim_floor_speedup": round(baseline / claiming[2], 1),
                         "ours_over_claim_floor": round(ours[2] / claiming[2], 2)},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
