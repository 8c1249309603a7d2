"""The lifecycle statements at scale, and the outbox's sending rate.

1. Each lifecycle statement (events completed, reservations completed) over
   100,000 and 1,000,000 rows with 1% due, and over 1,000,000 rows with only
   1,000 due: time per run (median of 5, each rolled back so every repeat sees
   the same table) and whether the plan reads an index. The cost should follow
   the number due, not the size of the table.
2. 5,000 queued messages sent through the outbox to the SMTP stand-in:
   messages per second.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import psycopg
from _support import scratch_database

from devstack.stack import Ports, connections
from devstack.standins import SmtpStandIn
from ticketflow import queries
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.outbox import send_due_messages, smtp_sender

DUE = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REPEATS = 5
MESSAGES = 5000
PARAMS = {"due_at": DUE, "grace_seconds": timedelta(minutes=35).total_seconds()}


def load_events(conn: psycopg.Connection, rows: int, due: int) -> None:
    """`rows` events, `due` of them live and ended before DUE; the rest live and ending later, or done."""
    conn.execute("TRUNCATE events RESTART IDENTITY CASCADE")
    conn.execute(
        """
        INSERT INTO events (title, start_date, end_date, status)
        SELECT 'event ' || g, e - interval '1 hour', e, s
        FROM generate_series(1, %(rows)s) AS g,
             LATERAL (SELECT %(due)s::timestamptz
                             + (CASE WHEN g <= %(n_due)s THEN -1 ELSE 1 END) * (g %% 1000 + 1)
                               * interval '1 minute' AS e,
                             CASE WHEN g <= %(n_due)s OR g %% 2 = 0 THEN 'confirmed' ELSE 'completed' END AS s) AS v
        """,
        {"due": DUE, "rows": rows, "n_due": due},
    )
    conn.execute("VACUUM ANALYZE events")


def load_reservations(conn: psycopg.Connection, rows: int, due: int) -> None:
    """`rows` reservations, `due` of them confirmed and more than 35 minutes past their start."""
    conn.execute("TRUNCATE reservations, email_outbox RESTART IDENTITY CASCADE")
    conn.execute("ALTER TABLE reservations DISABLE TRIGGER reservations_emails")  # loading, not reserving: no mail
    conn.execute(
        """
        INSERT INTO reservations (customer_id, start_time, status)
        SELECT 1, %(due)s::timestamptz + (CASE WHEN g <= %(n_due)s THEN -1 ELSE 1 END)
                                         * (interval '40 minutes' + (g %% 1000) * interval '1 second'),
               CASE WHEN g <= %(n_due)s OR g %% 2 = 0 THEN 'confirmed' ELSE 'completed' END
        FROM generate_series(1, %(rows)s) AS g
        """,
        {"due": DUE, "rows": rows, "n_due": due},
    )
    conn.execute("ALTER TABLE reservations ENABLE TRIGGER reservations_emails")
    conn.execute("VACUUM ANALYZE reservations")


def measure(conn: psycopg.Connection, query_name: str) -> dict:
    statement = queries.load(query_name)
    timings, changed = [], 0
    for _ in range(REPEATS):
        with conn.transaction(force_rollback=True):
            started = time.perf_counter()
            changed = conn.execute(statement, PARAMS).rowcount
            timings.append((time.perf_counter() - started) * 1000)
    with conn.transaction(force_rollback=True):
        plan = [r[0] for r in conn.execute("EXPLAIN " + statement, PARAMS).fetchall()]
    return {"changed": changed, "median_ms": round(statistics.median(timings), 2),
            "uses_index": any("Index" in line for line in plan) and not any("Seq Scan" in line for line in plan)}


def outbox_throughput(conn: psycopg.Connection) -> dict:
    conn.execute("TRUNCATE email_outbox RESTART IDENTITY")
    conn.execute("INSERT INTO email_outbox (dedup_key, template, recipient, context)"
                 " SELECT 'bench:' || g, 'reservation_confirmed', 'guest' || g || '@example.com',"
                 " jsonb_build_object('reservation_id', g, 'status', 'confirmed', 'start_time', %s::timestamptz,"
                 " 'customer_name', 'Guest ' || g, 'customer_email', 'guest' || g || '@example.com')"
                 " FROM generate_series(1, %s) AS g", (DUE, MESSAGES))
    with tempfile.TemporaryDirectory() as mail_dir:
        smtp = SmtpStandIn(mail_dir).start()
        try:
            for name, value in connections(replace(Ports(), smtp=smtp.port), "postgresql://unused@127.0.0.1:1/x").items():
                os.environ[name] = value
            started = time.perf_counter()
            with AuditedRun(conn, RunWindow("notifications", "bench", DUE)) as run, smtp_sender() as (send, sender):
                send_due_messages(run, send, sender=sender, admin_email="desk@example.com", timezone="UTC",
                                  max_attempts=3)
            elapsed = time.perf_counter() - started
            delivered = len(smtp.box.keys())
        finally:
            smtp.stop()
    return {"messages": run.outcome.changed, "delivered": delivered, "seconds": round(elapsed, 2),
            "messages_per_second": round(run.outcome.changed / elapsed)}


def main() -> None:
    figures = {}
    with scratch_database() as url, closing(psycopg.connect(url, autocommit=True)) as conn:
        conn.execute("INSERT INTO customers (username, email) VALUES ('bench', 'bench@example.com')")
        for rows, due in ((100_000, 1_000), (1_000_000, 10_000), (1_000_000, 1_000)):
            load_events(conn, rows, due)
            load_reservations(conn, rows, due)
            for name, query in (("events", "events/complete_ended"), ("reservations", "reservations/complete_overdue")):
                result = figures[f"{name}_{rows}_rows_{due}_due"] = measure(conn, query)
                print(f"{name:>12}: {rows:>9,} rows, {result['changed']:>6,} due: {result['median_ms']:>8.2f} ms"
                      f"  index: {result['uses_index']}", flush=True)
        figures["outbox"] = outbox = outbox_throughput(conn)
        print(f"      outbox: {outbox['messages']:,} messages in {outbox['seconds']} s"
              f" = {outbox['messages_per_second']}/s", flush=True)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
