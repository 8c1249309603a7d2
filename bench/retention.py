"""Retention deleting 1,000,000 old rows while another session works like the DAGs do.

The database holds 500,000 old audit rows (`automation_runs`) and 500,000 old
sent messages (`email_outbox`). `retention.delete_old_rows` deletes them (the
real code: batches of 1,000, each batch its own transaction with its audit
unit) while a second session runs what the other DAGs run, over and over:

- a new DAG run's audit row opened, added to and closed (every DAG);
- a message queued and marked sent (event_lifecycle and notifications);
- an old run reopened by a rerun (Clear in the UI): an UPDATE of an old audit
  row, one that retention may be deleting at that moment.

Every statement of that session is timed, with and without retention running
(the baseline), and a third session samples `pg_stat_activity` every 2 ms for
the workload waiting on a lock. Printed: the longest lock wait the other
session saw, its longest statement (and p99) against the baseline, how long
retention's longest batch held its rows, and the deletion rate.

Prints one JSON object on its last line.
"""

from __future__ import annotations

import json
import random
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta

import psycopg
from _support import scratch_database

from ticketflow import retention, settings
from ticketflow.audit import AuditedRun, RunOutcome, RunWindow

DUE = datetime(2026, 6, 1, 3, 15, tzinfo=UTC)
OLD_AUDIT_ROWS = 500_000
OLD_SENT_MESSAGES = 500_000
SAMPLE_SECONDS = 0.002


def load(conn: psycopg.Connection) -> None:
    """The old rows, spread over the two years before the cut-off; one recent run per automation."""
    conn.execute("""
        INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, finished_at, status, processed, changed)
        SELECT 'dag_' || (g %% 10), 'scheduled__' || g, t, t, t + interval '2 seconds', 'success', g %% 7, g %% 3
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT %(due)s::timestamptz - interval '100 days' - g * interval '1 minute' AS t) AS v
    """, {"n": OLD_AUDIT_ROWS, "due": DUE})
    conn.execute("""
        INSERT INTO automation_runs (dag_id, run_id, due_at, started_at, status)
        SELECT 'dag_' || d, 'recent', %(due)s, %(due)s, 'success' FROM generate_series(0, 9) AS d
    """, {"due": DUE})
    conn.execute("""
        INSERT INTO email_outbox (dedup_key, template, recipient, context, status, attempts, queued_at, sent_at)
        SELECT 'bench:' || g, 'reservation_confirmed', 'guest' || g || '@example.com',
               jsonb_build_object('reservation_id', g, 'status', 'confirmed'), 'sent', 1, t, t
        FROM generate_series(1, %(n)s) AS g,
             LATERAL (SELECT %(due)s::timestamptz - interval '40 days' - g * interval '1 minute' AS t) AS v
    """, {"n": OLD_SENT_MESSAGES, "due": DUE})
    conn.execute("VACUUM ANALYZE automation_runs")
    conn.execute("VACUUM ANALYZE email_outbox")


class Workload:
    """The other DAGs: each kind of statement timed, in milliseconds."""

    def __init__(self, url: str, old_ids: list[int]):
        self.url, self.old_ids = url, old_ids
        self.timings: dict[str, list[float]] = {"audit": [], "outbox": [], "rerun_of_an_old_run": []}
        self.stop = threading.Event()
        self.pid: int | None = None
        self.ready = threading.Event()

    def _timed(self, kind: str, work, *args) -> None:
        started = time.perf_counter()
        work(*args)
        self.timings[kind].append((time.perf_counter() - started) * 1000)

    def run(self) -> None:
        rng = random.Random(7)
        with closing(psycopg.connect(self.url, autocommit=True)) as conn:
            self.pid = conn.info.backend_pid
            self.ready.set()
            while not self.stop.is_set():
                window = RunWindow("bench_dag", f"manual__{time.monotonic_ns()}", DUE)
                self._timed("audit", self.audited_run, conn, window)
                self._timed("outbox", self.send_one, conn, window.run_id)
                self._timed("rerun_of_an_old_run", self.rerun, conn, rng.choice(self.old_ids))

    @staticmethod
    def audited_run(conn: psycopg.Connection, window: RunWindow) -> None:
        """What every DAG run writes: its audit row opened, one unit added, closed."""
        with AuditedRun(conn, window) as run, run.unit() as unit:
            unit.processed = unit.changed = 1

    @staticmethod
    def send_one(conn: psycopg.Connection, key: str) -> None:
        """A message queued (a lifecycle's transaction), then marked sent (the sender's)."""
        with conn.transaction():
            message = conn.execute("INSERT INTO email_outbox (dedup_key, template, recipient, context)"
                                   " VALUES (%s, 'reservation_confirmed', 'a@example.org', '{}') RETURNING id",
                                   (f"live:{key}",)).fetchone()[0]
        with conn.transaction():
            conn.execute("UPDATE email_outbox SET status = 'sent', sent_at = clock_timestamp(), attempts = 1"
                         " WHERE id = %s", (message,))

    @staticmethod
    def rerun(conn: psycopg.Connection, old_id: int) -> None:
        """A rerun reopening an old run's audit row: the row retention may be deleting at that moment."""
        with conn.transaction():
            conn.execute("UPDATE automation_runs SET try_number = try_number + 1, error = NULL WHERE id = %s",
                         (old_id,))


class LockWaitSampler:
    """Samples the workload's backend: the contiguous stretches it spent waiting on a lock, in milliseconds."""

    def __init__(self, url: str):
        self.url = url
        self.stop = threading.Event()
        self.waits: list[float] = []
        self.samples = 0

    def run(self, pid: int) -> None:
        waiting_since = None
        with closing(psycopg.connect(self.url, autocommit=True)) as conn:
            while not self.stop.is_set():
                row = conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
                now = time.perf_counter()
                self.samples += 1
                if row and row[0] == "Lock":
                    waiting_since = waiting_since or now
                elif waiting_since is not None:
                    self.waits.append((now - waiting_since) * 1000)
                    waiting_since = None
                time.sleep(SAMPLE_SECONDS)


class TimedRun(AuditedRun):
    """AuditedRun that times each unit: how long retention's batches held their rows locked."""

    batch_ms: list[float] = []

    @contextmanager
    def unit(self) -> Iterator[RunOutcome]:
        started = time.perf_counter()
        with super().unit() as delta:
            yield delta
        self.batch_ms.append((time.perf_counter() - started) * 1000)


def _summary(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    return {"count": len(values), "median_ms": round(statistics.median(ordered), 2),
            "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))], 2), "max_ms": round(ordered[-1], 2)}


def measure_workload(url: str, old_ids: list[int], seconds: float | None, during=None) -> tuple[Workload, list, float]:
    """The workload (and the sampler) for `seconds`, or while `during()` runs; what `during` returned."""
    workload, sampler = Workload(url, old_ids), LockWaitSampler(url)
    worker = threading.Thread(target=workload.run)
    worker.start()
    workload.ready.wait(10)
    watcher = threading.Thread(target=sampler.run, args=(workload.pid,))
    watcher.start()
    started = time.perf_counter()
    result = during() if during else time.sleep(seconds or 0)
    elapsed = time.perf_counter() - started
    workload.stop.set()
    sampler.stop.set()
    worker.join()
    watcher.join()
    return workload, [sampler, result], elapsed


def main() -> None:
    figures: dict = {"old_rows": OLD_AUDIT_ROWS + OLD_SENT_MESSAGES, "batch_size": retention.BATCH_SIZE}
    with scratch_database() as url, closing(psycopg.connect(url, autocommit=True)) as conn:
        started = time.perf_counter()
        load(conn)
        print(f"loaded {figures['old_rows']:,} old rows in {time.perf_counter() - started:.1f} s", flush=True)
        old_ids = [row[0] for row in conn.execute("SELECT id FROM automation_runs WHERE run_id <> 'recent'")]

        baseline, (baseline_sampler, _), _ = measure_workload(url, old_ids, seconds=20)
        print(f"baseline (20 s, no retention): {json.dumps({k: _summary(v) for k, v in baseline.timings.items()})}",
              flush=True)

        ages = {what: days for what, (_, days) in settings.RETENTION_DAYS.items()}

        def delete():
            with closing(psycopg.connect(url, autocommit=True)) as own, \
                    TimedRun(own, RunWindow("retention", "bench", DUE)) as run:
                return retention.delete_old_rows(run, ages)

        during, (sampler, deleted), seconds = measure_workload(url, old_ids, None, during=delete)
        left = conn.execute("SELECT (SELECT count(*) FROM automation_runs WHERE started_at < %(due)s - %(runs)s),"
                            " (SELECT count(*) FROM email_outbox WHERE sent_at < %(due)s - %(mail)s)",
                            {"due": DUE, "runs": timedelta(days=ages["automation_runs"] or 0),
                             "mail": timedelta(days=ages["sent_email"] or 0)}).fetchone()

    deleted_rows = deleted["automation_runs"] + deleted["email_outbox"]
    figures.update({
        "deleted": deleted, "old_rows_left": sum(left), "seconds": round(seconds, 1),
        "rows_per_second": round(deleted_rows / seconds),
        "longest_batch_ms": round(max(TimedRun.batch_ms), 1),
        "longest_lock_wait_ms_seen_by_the_other_session": round(max(sampler.waits, default=0.0), 1),
        "lock_waits_seen": len(sampler.waits), "lock_wait_samples": sampler.samples,
        "sample_interval_ms": SAMPLE_SECONDS * 1000,
        "other_session_during_retention": {kind: _summary(values) for kind, values in during.timings.items()},
        "other_session_baseline": {kind: _summary(values) for kind, values in baseline.timings.items()},
        "baseline_lock_waits_seen": len(baseline_sampler.waits),
    })
    print(f"deleted {deleted_rows:,} rows in {seconds:.1f} s ({figures['rows_per_second']:,}/s), "
          f"longest batch {figures['longest_batch_ms']} ms; the other session waited on a lock "
          f"{len(sampler.waits)} times, at most {figures['longest_lock_wait_ms_seen_by_the_other_session']} ms",
          flush=True)
    during_audit, baseline_audit = figures["other_session_during_retention"], figures["other_session_baseline"]
    figures["summary"] = [
        f"{deleted_rows:,} old rows deleted in {seconds:.1f} s ({figures['rows_per_second']:,} rows/s), in batches of"
        f" {retention.BATCH_SIZE:,}; the longest batch held its rows {figures['longest_batch_ms']} ms",
        f"the longest lock wait the other session saw: {figures['longest_lock_wait_ms_seen_by_the_other_session']}"
        f" ms ({len(sampler.waits)} waits, sampled every {SAMPLE_SECONDS * 1000:.0f} ms;"
        f" {len(baseline_sampler.waits)} in the baseline)",
        f"its audit transactions: p99 {during_audit['audit']['p99_ms']} ms, longest {during_audit['audit']['max_ms']}"
        f" ms, against p99 {baseline_audit['audit']['p99_ms']} ms, longest {baseline_audit['audit']['max_ms']} ms"
        " without retention"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
