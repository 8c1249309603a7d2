"""What every Ticketflow DAG shares: default arguments, the run's window, the audited task body.

Kept free of Airflow imports at module level (but for the notifier's base
class, which `airflow.sdk` has loaded already) so DAG files parse fast and the
library stays testable without a running Airflow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg

from ticketflow.audit import AuditedPart, AuditedRun, RunOutcome, RunWindow, run_audited
from ticketflow.notifier import FailedTaskNotifier
from ticketflow.settings import TICKETING_DB_CONN_ID

#: on_failure_callback of every task: closes the run's audit row if the task died without closing it, and
#: records the failure for the `alerts` DAG.
record_failure = FailedTaskNotifier()


def refuse_undeclared_conf(context: Mapping[str, Any]) -> None:
    """pre_execute of every task: a run whose conf has a key its DAG does not declare fails before it acts.

    Airflow accepts any key at trigger time (an undeclared one becomes a Param of
    its own and validates), so a misspelt or unsupported key (`batch_size`,
    `due_at`) would be ignored while the run succeeds. Failing at once, without
    retries, tells the operator the key did nothing.
    """
    from airflow.sdk.exceptions import AirflowFailException

    declared = {*context["dag"].params, *(context["task"].params or {})}
    undeclared = sorted(set(context["dag_run"].conf or {}) - declared)
    if undeclared:
        raise AirflowFailException(
            f"{context['dag'].dag_id} does not take the conf key(s) {', '.join(map(repr, undeclared))}; it takes "
            + (", ".join(sorted(declared)) if declared else "no conf at all") + ". Nothing was done.")


#: Retries back off exponentially: a database restart or a flaky service
#: should cost one slow retry, not a failed run.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "ticketflow",
    "retries": 3,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(minutes=30),
    "on_failure_callback": record_failure,
    "pre_execute": refuse_undeclared_conf,
}

#: What every Ticketflow DAG declares alike; a DAG file adds its id, schedule, tags and doc.
#: One run at a time: each run's due instant is later than the last one's.
DAG_DEFAULTS: dict[str, Any] = {
    "start_date": datetime(2026, 1, 1, tzinfo=UTC),
    "catchup": False,
    "max_active_runs": 1,
    "default_args": DEFAULT_ARGS,
}

#: Cron shared by the frequent automations.
EVERY_FIVE_MINUTES = "*/5 * * * *"

#: A schedule given in seconds (the seed daemon's `--interval`) runs at most this often: every run starts a
#: task process, and a run that takes longer than its interval only delays the next one (one run at a time).
MIN_INTERVAL_SECONDS = 60
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


def schedule_for(dag_id: str, default: str) -> str | timedelta:
    """The DAG's schedule: `TICKETFLOW_SCHEDULE_<DAG_ID>` when set (not empty), else `default`.

    Read from the environment at parse time, never from an Airflow Variable (that would be a
    metadata database query every time the file is parsed). A bad value raises here, naming the
    variable and why, so the DAG file shows as an import error instead of running on a schedule
    nobody chose.
    """
    variable = f"TICKETFLOW_SCHEDULE_{dag_id.upper()}"
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        return parse_schedule(raw)
    except ValueError as exc:
        raise ValueError(f"{variable}={raw!r} is not a schedule: {exc}") from None


def parse_schedule(raw: str) -> str | timedelta:
    """A cron expression (5 fields, in UTC), an Airflow preset (`@hourly`, `@daily`, ...), or a whole number of
    seconds between runs, as the seed daemon's `--interval` took it; ValueError says why not."""
    if raw.isascii() and raw.isdigit():
        seconds = int(raw) if len(raw) <= 12 else MAX_INTERVAL_SECONDS + 1
        if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
            raise ValueError(f"an interval in seconds must be {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS}"
                             " (a year)")
        return timedelta(seconds=seconds)
    from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable
    from airflow.sdk.exceptions import AirflowTimetableInvalid
    from croniter import CroniterError, croniter

    if not raw.startswith("@") and len(raw.split()) != 5:
        raise ValueError(f"a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has"
                         f" {len(raw.split())}; or give an Airflow preset such as @daily, or a number of seconds")
    timetable = CronTriggerTimetable(raw, timezone="UTC")
    try:
        timetable.validate()  # Airflow's own check, which the scheduler would make
        croniter(timetable.expression, DAG_DEFAULTS["start_date"]).get_next(datetime)
    except (AirflowTimetableInvalid, CroniterError) as exc:  # they say what is wrong with the expression
        if raw.startswith("@"):
            raise ValueError("Airflow's presets are @hourly, @daily, @weekly, @monthly, @quarterly and @yearly"
                             ) from None
        raise ValueError("it never fires" if str(exc) == "failed to find next date" else str(exc)) from None
    return raw


def run_window(context: Mapping[str, Any]) -> RunWindow:
    """The run's identity and its due instant, never the wall clock.

    Scheduled and backfill runs decide against `data_interval_end` (with a
    cron schedule it equals the trigger time). A run triggered through the
    REST API may have no logical date and no interval: it decides against
    its `run_after`, the instant it was asked to run for. A manual run for a
    logical date in the future is refused: it would run now but complete
    events and reservations as of that future, which nothing could undo.
    """
    from airflow.sdk.exceptions import AirflowFailException

    dag_run = context["dag_run"]
    interval_start = context.get("data_interval_start")
    interval_end = context.get("data_interval_end")
    due_at = interval_end or context.get("logical_date") or dag_run.run_after
    if due_at is None:
        raise ValueError(f"run {dag_run.run_id} has no data interval, logical date or run_after")
    if getattr(dag_run, "run_type", None) == "manual" and dag_run.run_after and due_at > dag_run.run_after:
        raise AirflowFailException(
            f"run {dag_run.run_id} is for {due_at.isoformat()}, later than it was triggered "
            f"({dag_run.run_after.isoformat()}): Ticketflow does not act on the future; trigger it without a "
            "logical date, or with one in the past")
    return RunWindow(
        dag_id=dag_run.dag_id,
        run_id=dag_run.run_id,
        due_at=due_at,
        data_interval_start=interval_start,
        data_interval_end=interval_end,
        try_number=context["ti"].try_number,
    )


def app_connection() -> psycopg.Connection:
    """A connection to `ticketing_db` from the Airflow connection, in autocommit mode, its session in UTC.

    Autocommit makes every `conn.transaction()` block a real, separate
    transaction: the unit of work is always explicit. UTC makes interval
    arithmetic exact: in a zone with DST, PostgreSQL adds '1 day' as 23 or 25 hours.
    """
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    # With psycopg 3 and SQLAlchemy 2 installed (pinned), the hook returns a psycopg 3 connection.
    conn = cast(psycopg.Connection, PostgresHook(postgres_conn_id=TICKETING_DB_CONN_ID).get_conn())
    conn.autocommit = True
    conn.execute("SET TIME ZONE 'UTC'")
    return conn


def _summary(window: RunWindow, outcome: RunOutcome) -> dict[str, Any]:
    return {"due_at": window.due_at.isoformat(), "processed": outcome.processed, "changed": outcome.changed,
            "skipped": outcome.skipped, **outcome.details}


def audited_task(
    context: Mapping[str, Any], work: Callable[[psycopg.Connection, RunWindow], RunOutcome]
) -> dict[str, Any]:
    """Body of a one-statement task: the work and its audit in one transaction; the summary for XCom."""
    window = run_window(context)
    with closing(app_connection()) as conn:
        return _summary(window, run_audited(conn, window, work))


def audited_batches(context: Mapping[str, Any], work: Callable[[AuditedRun], None]) -> dict[str, Any]:
    """Body of a batched task: `work` commits units through `run.unit()`; the summary for XCom."""
    window = run_window(context)
    with closing(app_connection()) as conn, AuditedRun(conn, window) as run:
        work(run)
    return _summary(window, run.outcome)


def audited_part(context: Mapping[str, Any], part: int, parts: int,
                 work: Callable[[AuditedRun], None]) -> dict[str, Any]:
    """Body of one of `parts` mapped tasks that make a run together (`AuditedPart`); the part's summary for XCom."""
    window = run_window(context)
    with closing(app_connection()) as conn, AuditedPart(conn, window, part, parts) as run:
        work(run)
    return _summary(window, run.outcome)
