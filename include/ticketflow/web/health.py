"""The automation health report: what the dashboard shows, read from the audit tables in four statements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ticketflow import queries
from ticketflow.db import one

# The automations that write `automation_runs`, in the order the dashboard shows them.
AUTOMATIONS: dict[str, str] = {
    "recurring_tickets": "Recurring tickets",
    "ticket_task_assignment": "Task assignment",
    "tdx_ticket_queue": "TDX report queue",
    "notifications": "Email notifications",
    "reservation_lifecycle": "Reservation lifecycle",
    "event_lifecycle": "Event lifecycle",
    "event_archive": "Event archive",
    "alerts": "Alerts",
}
RUNS_PER_CHART = 120
#: The parked-templates tile names this many reasons, and this many templates of each.
PARKED_REASONS_SHOWN = 5
PARKED_IDS_PER_REASON = 5


@dataclass(frozen=True)
class RunPoint:
    run_id: str
    started_at: datetime
    status: str
    processed: int
    changed: int
    skipped: int
    duration_seconds: float | None


@dataclass
class AutomationHealth:
    dag_id: str
    label: str
    last_run_id: str | None
    last_started_at: datetime | None
    last_status: str | None
    last_error: str | None
    runs_24h: int
    failures_24h: int
    runs_7d: int
    failures_7d: int
    runs: list[RunPoint] = field(default_factory=list)


@dataclass(frozen=True)
class ParkedReason:
    """One reason the job parked templates for: how many, the longest parked of them, since how long."""

    reason: str
    templates: int
    template_ids: list[int]
    waiting_seconds: float


@dataclass(frozen=True)
class ParkedTemplates:
    total: int
    reasons: list[ParkedReason]
    other_reasons: int  # reasons beyond those listed


@dataclass(frozen=True)
class HealthReport:
    as_of: datetime
    automations: list[AutomationHealth]
    backlog: dict[str, Any]
    parked: ParkedTemplates


def health_report(conn: psycopg.Connection, now: datetime, runs_per_chart: int = RUNS_PER_CHART) -> HealthReport:
    """Every automation's recent runs and the waiting work, as of `now`."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(queries.load("health/automations"), {"now": now, "known": list(AUTOMATIONS)}).fetchall()
        automations = {row["dag_id"]: AutomationHealth(label=AUTOMATIONS.get(row["dag_id"]) or row["dag_id"], **row)
                       for row in rows}
        for point in cur.execute(queries.load("health/runs"), {"now": now, "per_automation": runs_per_chart}):
            dag_id = point.pop("dag_id")
            if dag_id in automations:
                automations[dag_id].runs.append(RunPoint(**point))
        backlog = one(cur.execute(queries.load("health/backlog"), {"now": now}))
        parked = parked_templates(cur, now)
    return HealthReport(now, list(automations.values()), backlog, parked)


def parked_templates(cur: psycopg.Cursor[dict[str, Any]], now: datetime, reasons: int = PARKED_REASONS_SHOWN,
                     ids_per_reason: int = PARKED_IDS_PER_REASON) -> ParkedTemplates:
    """The parked recurring templates as of `now`: their count and the most common reasons."""
    rows = cur.execute(queries.load("health/parked_templates"),
                       {"now": now, "reasons": reasons, "ids_per_reason": ids_per_reason}).fetchall()
    if not rows:
        return ParkedTemplates(0, [], 0)
    return ParkedTemplates(rows[0]["total_templates"],
                           [ParkedReason(row["reason"], row["templates"], row["template_ids"], row["waiting_seconds"])
                            for row in rows],
                           rows[0]["total_reasons"] - len(rows))
