"""Recurring tickets: create each due occurrence exactly once and move the template's pointer.

A run decides against its due instant (the DAG run's data interval end): an
occurrence is due when it is at or after the template's `next_occurrence` and
at or before due instant + the template's lead time. Templates are processed
in batches; each batch is one transaction that claims its templates with
SKIP LOCKED, inserts the occurrences (unique per template and occurrence),
records skipped ones and advances the pointers. Interval schedules are
planned in SQL; RRULE schedules in Python (see `ticketflow.recurrence`).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import psycopg

from ticketflow import queries
from ticketflow.audit import AuditedRun
from ticketflow.db import one
from ticketflow.recurrence import (
    MAX_OCCURRENCES_PER_WINDOW,
    TOO_MANY_FROM_POINTER,
    TOO_MANY_OCCURRENCES,
    RecurrenceError,
    RuleSchedule,
    window,
    zone,
)

DEFAULT_BATCH_SIZE = 5000
log = logging.getLogger(__name__)


def _max_lead_time(conn: psycopg.Connection) -> timedelta:
    """The largest lead time of a live template: bounds the claim to an index range."""
    return one(conn.execute(
        "SELECT coalesce(max(recurrence_lead_time), interval '0') FROM tickets"
        " WHERE is_recurring AND NOT archived AND recurrence_error IS NULL AND paused_at IS NULL"
    ))[0]


def _plan_rule_batch(templates: list[tuple], due_at) -> dict:
    """The arrays for recurring/plan_from_arrays.sql; a template that cannot be scheduled gets its error."""
    arrays: dict[str, list] = {k: [] for k in ("template_ids", "next_occurrences", "errors",
                              "plan_template_ids", "plan_occurrences", "plan_create")}
    for template_id, rule, tz, anchor, pointer, end, policy, horizon, taken in templates:
        next_occurrence, error = None, None
        try:
            planned = window(RuleSchedule.parse(rule, anchor, tz), pointer, horizon, end)
            next_occurrence = planned.next_occurrence
            due = [o for o in planned.due if o not in set(taken)]
            missed = [o for o in due if o <= due_at]  # later ones are early (lead time), not missed
            for occurrence in due:
                arrays["plan_template_ids"].append(template_id)
                arrays["plan_occurrences"].append(occurrence)
                arrays["plan_create"].append(policy == "create_all" or occurrence > due_at or occurrence == missed[-1])
        except Exception as exc:  # any failure to schedule is this template's: park it, go on with the rest
            error = (str(exc) if isinstance(exc, RecurrenceError)
                     else f"cannot evaluate RRULE: {type(exc).__name__}: {exc}")
        arrays["template_ids"].append(template_id)
        arrays["next_occurrences"].append(next_occurrence)
        arrays["errors"].append(error)
    return arrays


def _record_batch(outcome, claimed: int, created: int, skipped: int, parked: list[dict], moved: list[dict]) -> None:
    """A batch's totals for the run's audit; each parked or moved template also goes to the task log."""
    for template in parked:
        log.warning("recurring ticket template %s skipped: %s", template["template_id"], template["reason"])
    for template in moved:
        log.info("recurring ticket template %s: next_occurrence was set off its schedule, so the series now"
                 " starts there (%s)", template["template_id"], template["anchor"])
    outcome.processed, outcome.changed, outcome.skipped = claimed, created, skipped
    outcome.details = {"created": created, "invalid_templates": parked, "moved_series": moved}


def create_due_occurrences(run: AuditedRun, default_timezone: str, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
    """Process every due template, one committed batch at a time; totals go to the run's audit."""
    zone(default_timezone)  # a bad configuration fails the run before anything is written
    conn = run.conn
    with run.unit() as outcome:  # series rescheduled through reschedule_at restart there first
        rescheduled = [r[0] for r in conn.execute(queries.load("recurring/apply_reschedules"),
                                                  {"template_ids": None})]
        outcome.details = {"rescheduled": len(rescheduled)}
    params = {"due_at": run.window.due_at, "default_timezone": default_timezone, "run_id": run.window.run_id,
              "batch_size": batch_size, "max_lead_time": _max_lead_time(conn),
              "max_occurrences": MAX_OCCURRENCES_PER_WINDOW, "too_many_occurrences": TOO_MANY_OCCURRENCES,
              "too_many_from_pointer": TOO_MANY_FROM_POINTER}
    interval_batch = queries.load("recurring/plan_intervals") + queries.load("recurring/apply_plan")
    while True:
        with run.unit() as outcome:
            claimed, *totals = one(conn.execute(interval_batch, params))
            _record_batch(outcome, claimed, *totals)
        if claimed < batch_size:
            break

    rule_batch = queries.load("recurring/plan_from_arrays") + queries.load("recurring/apply_plan")
    while True:
        with run.unit() as outcome:
            templates = conn.execute(queries.load("recurring/claim_rule_templates"), params).fetchall()
            if templates:
                arrays = _plan_rule_batch(templates, run.window.due_at)
                _record_batch(outcome, *one(conn.execute(rule_batch, {**params, **arrays})))
        if len(templates) < batch_size:
            break

    with run.unit() as outcome:  # occurrences moved to another instant, now due
        moves = conn.execute(queries.load("recurring/create_moved"), params).fetchall()
        outcome.changed = sum(created for _, created in moves)
        outcome.details = {"created": outcome.changed, "moved_created": outcome.changed}
