"""Retention: what is past its age goes, in small batches, and what exactly-once depends on stays.

Each kind of row has a rule, one query in `sql/queries/retention/` that deletes
one batch and says what it deleted, and an age (`TICKETFLOW_RETENTION_DAYS_<WHAT>`,
see `settings.RETENTION_DAYS`). The cut-off is the run's due instant minus the
age, never the wall clock, so a rerun of an old day deletes no more than that
day did. Each batch is its own short transaction together with its addition to
the run's audit row (SKIP LOCKED: it never waits for a row another DAG holds,
and holds its own for milliseconds), so a retention run never blocks the other
automations and its audit row says exactly what was deleted, per table.

Airflow's own metadata is cleaned by `airflow db clean`, run as a child process
with the metadata database's URL from the `airflow_metadata_db` connection: a
task process cannot reach that database itself (Airflow 3 blocks it).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ticketflow import queries, settings
from ticketflow.audit import AuditedRun, close_run, open_run
from ticketflow.dagkit import app_connection, run_window
from ticketflow.tdx.log import SIGHTING_REFRESH

log = logging.getLogger(__name__)

#: Rows per batch: each batch a transaction of a few milliseconds.
BATCH_SIZE = 1000
#: Lock waits are not expected (SKIP LOCKED); one behind a migration's table lock gives up instead of queueing
#: every other DAG's statements behind it.
LOCK_TIMEOUT = "5s"
#: The Airflow connection that names Airflow's metadata database for `airflow db clean` (optional).
AIRFLOW_METADATA_CONN_ID = "airflow_metadata_db"


@dataclass(frozen=True)
class Rule:
    """One kind of row: its age setting's key, the table whose rows the query returns, the query, and the
    keyset the batches walk (parameter names and where they start)."""

    what: str
    table: str
    query: str
    keys: tuple[tuple[str, Any], ...]


RULES = (
    Rule("automation_runs", "automation_runs", "retention/automation_runs", (("after_id", 0),)),
    Rule("sent_email", "email_outbox", "retention/sent_email", (("after_id", 0),)),
    Rule("recurring_skips", "recurring_occurrence_skips", "retention/recurring_skips",
         (("after_template_id", 0), ("after_occurrence_at", "-infinity"))),
    Rule("archived_events", "events", "retention/archived_events", (("after_id", 0),)),
    Rule("tdx_action_log", "meta.tdx_ticket_sightings", "retention/tdx_action_log", (("after_ticket_id", 0),)),
    Rule("alerts", "alerts", "retention/alerts", (("after_id", 0),)),
    Rule("intake_keys", "intake_requests", "retention/intake_keys", (("after_user", ""), ("after_key", ""))),
)


def cutoffs(due_at: datetime, ages: Mapping[str, int | None]) -> dict[str, datetime | None]:
    """Each kind's cut-off as of the run's due instant: rows older than it may go (None: kept for good)."""
    return {what: None if days is None else due_at - timedelta(days=days) for what, days in ages.items()}


def delete_old_rows(run: AuditedRun, ages: Mapping[str, int | None], batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Every rule's old rows, batch by batch, each batch a unit of `run`; rows deleted per table."""
    conn, due_at = run.conn, run.window.due_at
    limits = cutoffs(due_at, ages)
    conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    with run.unit() as unit:
        unit.details = {"cutoffs": {what: cutoff.isoformat() if cutoff else "never" for what, cutoff in limits.items()}}
    deleted: dict[str, int] = {}
    for rule in RULES:
        cutoff = limits[rule.what]
        if cutoff is None:
            log.info("retention: %s kept for good (%s=never)", rule.table, settings.RETENTION_DAYS[rule.what][0])
            continue
        after = dict(rule.keys)
        of_rule: dict[str, int] = {rule.table: 0}
        while True:
            with run.unit() as unit:
                cursor = conn.execute(queries.load(rule.query), {
                    **after, "cutoff": cutoff, "due_at": due_at, "batch_size": batch_size, "refresh": SIGHTING_REFRESH})
                rows = cursor.fetchall()
                # One row per row of the rule's table; columns after the keyset count rows deleted with it.
                counted = {rule.table: len(rows), **{column.name: sum(row[index] for row in rows) for index, column
                                                     in enumerate(cursor.description or []) if index >= len(rule.keys)}}
                unit.processed = unit.changed = sum(counted.values())
                unit.details = counted
            for table, count in counted.items():
                of_rule[table] = of_rule.get(table, 0) + count
            if not rows:
                break
            after = dict(zip((name for name, _ in rule.keys), max(row[:len(rule.keys)] for row in rows), strict=True))
        log.info("retention: deleted %s older than %s",
                 ", ".join(f"{count} rows of {table}" for table, count in of_rule.items()), cutoff.isoformat())
        deleted.update(of_rule)
    return deleted


_CHECKING = re.compile(r"^Checking table (\S+)$")
_FOUND = re.compile(r"^Found (\d+) rows meeting deletion criteria\.$")


def airflow_db_clean(cutoff: datetime, sql_alchemy_conn: str, batch_size: int = BATCH_SIZE,
                     timeout: float = 25 * 60) -> dict[str, int]:
    """`airflow db clean` of everything older than `cutoff` (batched, no archive tables), in a child process;
    rows deleted per metadata table, read from its report. Its output goes to the task log."""
    environment = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn}
    environment.pop("AIRFLOW__CORE__SQL_ALCHEMY_CONN", None)
    done = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "clean", "--clean-before-timestamp", cutoff.isoformat(), "--yes",
         "--skip-archive", "--batch-size", str(batch_size), "--error-on-cleanup-failure"],
        env=environment, capture_output=True, text=True, timeout=timeout, check=False)
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip():
            log.info("airflow db clean: %s", line)
    if done.returncode != 0:
        raise RuntimeError(f"airflow db clean failed with exit status {done.returncode}: "
                           f"{(done.stderr or done.stdout).strip().splitlines()[-1:]}")
    found: dict[str, int] = {}
    table = None
    for line in done.stdout.splitlines():
        if match := _CHECKING.match(line.strip()):
            table = match.group(1)
        elif (match := _FOUND.match(line.strip())) and table:
            found[f"airflow.{table}"] = int(match.group(1))
    return found


def metadata_database_url(conn_id: str = AIRFLOW_METADATA_CONN_ID) -> str | None:
    """The SQLAlchemy URL of Airflow's metadata database from the connection, or None when it is not defined."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        uri = BaseHook.get_connection(conn_id).get_uri()
    except AirflowNotFoundException:
        return None
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg2://", uri)


# --- the task bodies of the `retention` DAG ---

def _ages() -> dict[str, int | None]:
    """The ages, or a failure without retries: a bad setting fails every try alike."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        return settings.retention_days()
    except ValueError as exc:
        raise AirflowFailException(str(exc)) from None


def delete_old_rows_task(context: Mapping[str, Any]) -> dict[str, Any]:
    """Open the run's audit row and delete the application's old rows; the counts per table for XCom."""
    window = run_window(context)
    ages = _ages()
    with closing(app_connection()) as conn:
        open_run(conn, window)
        deleted = delete_old_rows(AuditedRun(conn, window), ages)
    return {"due_at": window.due_at.isoformat(), "deleted": deleted}


def clean_airflow_metadata_task(context: Mapping[str, Any]) -> dict[str, Any]:
    """Clean Airflow's metadata older than its age and close the run's audit row; skipped (and said so in the
    audit) when no `airflow_metadata_db` connection is defined, or its age is never."""
    from airflow.sdk.exceptions import AirflowSkipException

    window = run_window(context)
    cutoff = cutoffs(window.due_at, _ages())["airflow_metadata"]
    url = metadata_database_url()
    with closing(app_connection()) as conn:
        run = AuditedRun(conn, window)
        if cutoff is None or url is None:
            reason = ("TICKETFLOW_RETENTION_DAYS_AIRFLOW_METADATA is never" if cutoff is None
                      else f"no {AIRFLOW_METADATA_CONN_ID} connection is defined")
            with run.unit() as unit:
                unit.details = {"airflow_metadata": f"not cleaned: {reason}"}
            close_run(conn, window)
            raise AirflowSkipException(f"Airflow's metadata is not cleaned: {reason}")
        deleted = airflow_db_clean(cutoff, url)
        with run.unit() as unit:
            unit.processed = unit.changed = sum(deleted.values())
            unit.details = {**deleted, "airflow_metadata": f"cleaned before {cutoff.isoformat()}"}
        close_run(conn, window)
    return {"cutoff": cutoff.isoformat(), "deleted": deleted}
