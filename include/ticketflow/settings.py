"""Where Ticketflow finds its files and its configuration.

Every setting comes from the environment so that `make run`, the tests and
docker compose configure the same code the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(os.environ.get("TICKETFLOW_ROOT", Path(__file__).resolve().parents[2]))
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"

#: Airflow connection id of the application database (CONTRACT.md).
TICKETING_DB_CONN_ID = "ticketing_db"


def database_url_from_env() -> str | None:
    """The external application database, when the operator names one."""
    return os.environ.get("TICKETFLOW_DATABASE_URL") or None


def default_timezone() -> str:
    """IANA zone used where a row does not name its own."""
    return os.environ.get("TICKETFLOW_TIMEZONE", "UTC")
