"""The automation health report: what the dashboard shows, read from the audit tables in three statements."""

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
class HealthReport:
    as_of: datetime
    automations: list[AutomationHealth]
    backlog: dict[str, Any]


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
    return HealthReport(now, list(automations.values()), backlog)
