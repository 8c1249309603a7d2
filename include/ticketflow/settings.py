"""Where Ticketflow finds its files and its configuration.

Every setting comes from the environment so that `make run`, the tests and
docker compose configure the same code the same way.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PROJECT_ROOT = Path(os.environ.get("TICKETFLOW_ROOT", Path(__file__).resolve().parents[2]))
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"

#: Airflow connection id of the application database (a published name: deployments define it).
TICKETING_DB_CONN_ID = "ticketing_db"


def database_url_from_env() -> str | None:
    """The external application database, when the operator names one."""
    return os.environ.get("TICKETFLOW_DATABASE_URL") or None


#: IANA zones with summer time whose names PostgreSQL reads as fixed-offset abbreviations (migration 0011),
#: and the zone tzdata links each to.
ZONES_POSTGRESQL_READS_AS_ABBREVIATIONS = {"CET": "Europe/Brussels", "MET": "Europe/Brussels",
                                           "EET": "Europe/Athens", "WET": "Europe/Lisbon"}


def default_timezone() -> str:
    """IANA zone used where a row does not name its own; checked here, so a typo fails the task that reads it
    before anything is written or sent, instead of charging every email an attempt."""
    name = os.environ.get("TICKETFLOW_TIMEZONE", "UTC")
    if name in ZONES_POSTGRESQL_READS_AS_ABBREVIATIONS:
        raise ValueError(f"TICKETFLOW_TIMEZONE {name!r} is read by PostgreSQL as a fixed offset, without summer"
                         f" time: use {ZONES_POSTGRESQL_READS_AS_ABBREVIATIONS[name]} (or your own city's zone)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"TICKETFLOW_TIMEZONE must be an IANA time zone name such as America/Toronto,"
                         f" got {name!r}") from None
    return name


def _positive_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:  # float() takes "nan" and "inf": neither is a duration
        raise ValueError(f"{name} must be a positive number, got {raw!r}")
    return value


def reservation_grace_minutes() -> float:
    """How long after its start a confirmed reservation is completed (the seed's 35 minutes)."""
    return _positive_number("TICKETFLOW_RESERVATION_GRACE_MINUTES", 35)


def event_reminder_hours() -> float:
    return _positive_number("TICKETFLOW_EVENT_REMINDER_HOURS", 24)


def event_archive_days() -> float:
    return _positive_number("TICKETFLOW_EVENT_ARCHIVE_DAYS", 90)


def admin_email() -> str:
    """Where "New Reservation" messages go."""
    return os.environ.get("TICKETFLOW_ADMIN_EMAIL", "admin@localhost")


def alert_emails() -> list[str]:
    """Who is mailed alerts: `TICKETFLOW_ALERT_EMAILS` (comma-separated), else the admin address."""
    raw = os.environ.get("TICKETFLOW_ALERT_EMAILS", "").strip()
    if not raw:
        return [admin_email()]
    addresses = [address.strip() for address in raw.split(",")]
    for address in addresses:
        local, at, domain = address.partition("@")
        if not (local and at and domain) or any(c.isspace() or c in "<>\"" for c in address):
            raise ValueError(f"TICKETFLOW_ALERT_EMAILS must be email addresses separated by commas,"
                             f" got {address!r} in {raw!r}")
    return list(dict.fromkeys(addresses))


def alert_period_minutes() -> float:
    """At most one alert per condition in each period of this length (epoch-aligned: hours by default)."""
    return _positive_number("TICKETFLOW_ALERT_PERIOD_MINUTES", 60)


def alert_unallocated_minutes() -> float:
    """A ticket still without a task this long after it was created is an alert."""
    return _positive_number("TICKETFLOW_ALERT_UNALLOCATED_MINUTES", 60)


def alert_outbox_stalled_minutes() -> float:
    """Queued email this long past its send time means the outbox is not sending (SMTP down, sender stopped)."""
    return _positive_number("TICKETFLOW_ALERT_OUTBOX_STALLED_MINUTES", 15)


#: Airflow connection id of the optional alerts webhook (an http connection; a published name).
ALERTS_WEBHOOK_CONN_ID = "alerts_webhook"


def outbox_max_attempts() -> int:
    """Attempts before a message is parked as dead."""
    return int(_positive_number("TICKETFLOW_OUTBOX_MAX_ATTEMPTS", 8))


def max_assignments() -> int:
    """How many users of the step's role each new task is assigned to (the seed's 3)."""
    return int(_positive_number("TICKETFLOW_MAX_ASSIGNMENTS", 3))


def assignment_units() -> int:
    """At most how many mapped tasks share out a backlog of waiting tickets (by role), to run on as many
    worker slots at once."""
    return int(_positive_number("TICKETFLOW_ASSIGNMENT_UNITS", 4))


#: Airflow connection id and pool of the TeamDynamix Web API (published names).
TDX_CONN_ID = "tdx_api"
TDX_POOL = "tdx_api"
#: TDX ids (tickets, reports) are Int32, as is meta.daemon_action_log.ticket_id.
TDX_MAX_ID = 2**31 - 1
#: Row ids of Ticketflow's own tables are bigint.
ROW_MAX_ID = 2**63 - 1
#: Batches calling TDX at once, across all workers (created by `make run` and compose's airflow-init).
TDX_POOL_SLOTS = 4


def tdx_actions_file() -> Path:
    """The TDX queue's action list (YAML or JSON)."""
    return Path(os.environ.get("TICKETFLOW_TDX_ACTIONS", PROJECT_ROOT / "config" / "tdx_actions.yaml"))


def tdx_dry_run() -> bool:
    """Every TDX queue run only looks, the scheduled ones too (the seed's DAEMON_DRY_RUN)."""
    raw = os.environ.get("TICKETFLOW_TDX_DRY_RUN", "false").strip().lower()
    if raw not in {"true", "false", "1", "0", "yes", "no", ""}:
        raise ValueError(f"TICKETFLOW_TDX_DRY_RUN must be true or false, got {raw!r}")
    return raw in {"true", "1", "yes"}


def tdx_report_id() -> int:
    """The report the scheduled TDX queue works through (the seed's DAEMON_REPORT_ID)."""
    return int(_positive_number("TICKETFLOW_TDX_REPORT_ID", 1001))


#: How long retention keeps each kind of row, in days, and the defaults (docs/operations.md#retention explains
#: each, and what is kept whatever its age). `never` keeps them for good.
RETENTION_DAYS = {
    "automation_runs": ("TICKETFLOW_RETENTION_DAYS_AUTOMATION_RUNS", 90),
    "sent_email": ("TICKETFLOW_RETENTION_DAYS_SENT_EMAIL", 30),
    "recurring_skips": ("TICKETFLOW_RETENTION_DAYS_RECURRING_SKIPS", 180),
    "archived_events": ("TICKETFLOW_RETENTION_DAYS_ARCHIVED_EVENTS", 365),
    "tdx_action_log": ("TICKETFLOW_RETENTION_DAYS_TDX_ACTION_LOG", 180),
    "alerts": ("TICKETFLOW_RETENTION_DAYS_ALERTS", 180),
    "intake_keys": ("TICKETFLOW_RETENTION_DAYS_INTAKE_KEYS", 7),
    "airflow_metadata": ("TICKETFLOW_RETENTION_DAYS_AIRFLOW_METADATA", 30),
}
RETENTION_MAX_DAYS = 36500


def retention_days() -> dict[str, int | None]:
    """Each kind's age in days (None: never deleted), all checked before anything is deleted."""
    ages: dict[str, int | None] = {}
    for what, (name, default) in RETENTION_DAYS.items():
        raw = os.environ.get(name, "").strip()
        if raw.lower() == "never":
            ages[what] = None
        elif not raw:
            ages[what] = default
        elif raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= RETENTION_MAX_DAYS:
            ages[what] = int(raw)
        else:
            raise ValueError(f"{name} must be a whole number of days from 1 to {RETENTION_MAX_DAYS}, or never;"
                             f" got {raw!r}")
    return ages
