"""Recurring tickets: create each due occurrence exactly once and move the template's pointer.

A run decides against its due instant (the DAG run's data interval end). It
first applies reschedules (`reschedule_at`), then works in batches, each one
transaction: `recurring/claim_due_templates` claims due templates (SKIP
LOCKED), Python computes the RRULE templates' candidate occurrences
(`ticketflow.recurrence`), and `recurring/plan_batch` computes the interval
ones in SQL and decides, for all alike, what to create, what to record as
skipped and where each pointer moves. Last, occurrences moved to another
instant get their tickets when that instant is due (`recurring/create_moved`).

The job is the only writer of the pointer (`next_occurrence`): its
transactions say so with `ticketflow.recurring_engine` (`as_the_job`), and the
database refuses anyone else's change of it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg

from ticketflow import queries
from ticketflow.audit import AuditedRun
from ticketflow.db import one
from ticketflow.recurrence import (
    MAX_OCCURRENCES_PER_WINDOW,
    TOO_MANY_OCCURRENCES,
    RecurrenceError,
    RuleSchedule,
    zone,
)

DEFAULT_BATCH_SIZE = 5000
log = logging.getLogger(__name__)


def as_the_job(conn: psycopg.Connection) -> None:
    """Marks the current transaction as the recurring job's: the one writer of template pointers."""
    conn.execute("SELECT set_config('ticketflow.recurring_engine', 'on', true)")


def _max_lead_time(conn: psycopg.Connection) -> timedelta:
    """The largest lead time of a scheduled template: bounds the claim to an index range."""
    return one(conn.execute(
        "SELECT coalesce(max(recurrence_lead_time), interval '0') FROM recurring_scheduled_templates"))[0]


def rule_candidates(rule: str, anchor: datetime, tz: str, pointer: datetime, horizon: datetime) -> list[datetime]:
    """An RRULE template's occurrences from its pointer up to the first after `horizon`; past the cap it stops
    early (recurring/plan_batch parks the template, as it does an interval one)."""
    found: list[datetime] = []
    for instant in RuleSchedule.parse(rule, anchor, tz).occurrences_from(pointer):
        found.append(instant)
        if instant > horizon or len(found) > MAX_OCCURRENCES_PER_WINDOW:
            break
    return found


def _rule_arrays(claimed: list[tuple]) -> dict[str, list]:
    """The RRULE templates' candidates as recurring/plan_batch takes them; one that cannot be scheduled gets
    its error instead."""
    arrays: dict[str, list] = {"rule_template_ids": [], "rule_occurrences": [], "error_ids": [], "errors": []}
    for template_id, rule, tz, anchor, pointer, horizon in claimed:
        if rule is None:
            continue
        try:
            found = rule_candidates(rule, anchor, tz, pointer, horizon)
        except Exception as exc:  # any failure to schedule is this template's: park it, go on with the rest
            arrays["error_ids"].append(template_id)
            arrays["errors"].append(str(exc) if isinstance(exc, RecurrenceError)
                                    else f"cannot evaluate RRULE: {type(exc).__name__}: {exc}")
            continue
        arrays["rule_template_ids"].extend([template_id] * len(found))
        arrays["rule_occurrences"].extend(found)
    return arrays


def _record_batch(outcome, claimed: int, created: int, skipped: int, parked: list[dict]) -> None:
    """A batch's totals for the run's audit; each parked template also goes to the task log."""
    for template in parked:
        log.warning("recurring ticket template %s skipped: %s", template["template_id"], template["reason"])
    outcome.processed, outcome.changed, outcome.skipped = claimed, created, skipped
    outcome.details = {"created": created, "invalid_templates": parked}


def create_due_occurrences(run: AuditedRun, default_timezone: str, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
    """Process every due template, one committed batch at a time; totals go to the run's audit."""
    zone(default_timezone)  # a bad configuration fails the run before anything is written
    conn = run.conn
    with run.unit() as outcome:  # series rescheduled through reschedule_at restart there first
        as_the_job(conn)
        rescheduled = conn.execute(queries.load("recurring/apply_reschedules"), {"template_ids": None}).fetchall()
        outcome.details = {"rescheduled": len(rescheduled)}

    params = {"due_at": run.window.due_at, "default_timezone": default_timezone, "run_id": run.window.run_id,
              "batch_size": batch_size, "max_lead_time": _max_lead_time(conn),
              "max_occurrences": MAX_OCCURRENCES_PER_WINDOW, "too_many_occurrences": TOO_MANY_OCCURRENCES}
    while True:
        with run.unit() as outcome:
            as_the_job(conn)
            claimed = conn.execute(queries.load("recurring/claim_due_templates"), params).fetchall()
            totals: tuple = (0, 0, 0, [])
            if claimed:
                batch = {**params, **_rule_arrays(claimed), "template_ids": [row[0] for row in claimed]}
                # prepare=False: a prepared statement's generic plan (psycopg prepares after five runs) cannot
                # see how many templates the arrays hold, and runs batches ten times slower
                totals = one(conn.execute(queries.load("recurring/plan_batch"), batch, prepare=False))
            _record_batch(outcome, *totals)
        if len(claimed) < batch_size:
            break

    with run.unit() as outcome:  # occurrences moved to another instant, now due
        moves = conn.execute(queries.load("recurring/create_moved"), params).fetchall()
        outcome.changed = sum(created for _, created in moves)
        outcome.details = {"created": outcome.changed, "moved_created": outcome.changed}
