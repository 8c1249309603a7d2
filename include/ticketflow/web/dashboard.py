"""The automation health dashboard: one server-rendered page, charts as inline SVG."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path

import jinja2
import psycopg
from markupsafe import Markup

from ticketflow import alerts
from ticketflow.web.charts import Series, bar_chart
from ticketflow.web.health import health_report

WORK_SERIES = (
    Series("processed", "processed", "#4a78c2", lambda run: run.processed),
    Series("changed", "created or changed", "#43a36b", lambda run: run.changed),
)
DURATION_SERIES = (Series("duration", "duration", "#8a63b8", lambda run: run.duration_seconds),)


def humanize_seconds(seconds: float | None) -> str:
    """3 s, 4 min, 2 h 5 min, 3 d 4 h: how long, at a glance."""
    if seconds is None:
        return "–"
    seconds = max(int(seconds), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    environment.filters["since"] = humanize_seconds
    return environment.get_template("dashboard.html.j2")


#: Which DAG a waiting-work tile belongs to: a user sees the tile when they may read that DAG.
TILE_OWNERS = {"unallocated": "ticket_task_assignment", "emails": "notifications", "tdx": "tdx_ticket_queue",
               "parked": "recurring_tickets"}


def render(conn: psycopg.Connection, readable_dag_ids: set[str], now: datetime, ui_root: str = "") -> str:
    """The page as of `now`, for a user who may read `readable_dag_ids`; `ui_root` is where the Airflow UI lives."""
    report = health_report(conn, now)
    report.automations[:] = [a for a in report.automations if a.dag_id in readable_dag_ids]
    tiles = {tile for tile, dag_id in TILE_OWNERS.items() if dag_id in readable_dag_ids}
    charts = {
        automation.dag_id: {
            "work": Markup(bar_chart(automation.runs, WORK_SERIES, name=f"{automation.dag_id} work per run")),
            "duration": Markup(bar_chart(automation.runs, DURATION_SERIES, unit=" s",
                                         name=f"{automation.dag_id} duration per run")),
        }
        for automation in report.automations if automation.runs
    }
    open_alerts, alert_settings_error = _open_alerts(conn, now, readable_dag_ids)
    return _template().render(report=report, charts=charts, tiles=tiles, ui_root=ui_root, work_series=WORK_SERIES,
                              open_alerts=open_alerts, alert_settings_error=alert_settings_error)


def _open_alerts(conn: psycopg.Connection, now: datetime,
                 readable_dag_ids: set[str]) -> tuple[list[alerts.OpenCondition], str | None]:
    """The alert conditions open now; a bad alert setting is shown on the page instead of failing it."""
    try:
        config = alerts.AlertSettings.from_env()
    except ValueError as exc:
        return [], str(exc)
    return alerts.open_conditions(conn, now, readable_dag_ids, config), None
