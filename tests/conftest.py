"""Shared fixtures: a real PostgreSQL for the whole session and fresh databases on it.

The application database server is `TICKETFLOW_DATABASE_URL`'s when it is set,
else an embedded PostgreSQL under `.local/test-pg` on a free port. Each test
database is created with a unique name and dropped afterwards, so the tests
never touch the data of `make run` or of the database the URL names.
"""

from __future__ import annotations

import os
import signal
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql


def _stop_like_ctrl_c(signum, frame):
    raise KeyboardInterrupt


# A TERM (`make test` stopping its second pytest, or CI) ends the session as Ctrl-C does: the fixtures'
# finalizers still stop the stacks, PostgreSQL and Redis they started.
signal.signal(signal.SIGTERM, _stop_like_ctrl_c)

# Airflow reads its configuration at import: give the test process its own home.
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="ticketflow-airflow-home-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from devstack import free_port  # noqa: E402
from devstack.postgres import EmbeddedPostgres  # noqa: E402
from ticketflow.migrate import migrate  # noqa: E402
from ticketflow.settings import PROJECT_ROOT  # noqa: E402

APP_TABLES = ("tasks", "steps", "workflows", "reservations", "customers", "events", "tickets",
              "email_outbox", "event_attendees", "role_rotation",
              "automation_runs", "recurring_occurrence_skips",
              "meta.daemon_action_log", "meta.tdx_token_cache", "alerts", "alert_items",
              "meta.tdx_report_reads", "meta.tdx_ticket_sightings", "intake_requests", "automation_run_parts")


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def embedded_postgres() -> Iterator[EmbeddedPostgres]:
    # A second suite running at the same time (the one with the clock a year ahead) names a server of its own.
    server = EmbeddedPostgres(PROJECT_ROOT / ".local" / os.environ.get("TICKETFLOW_TEST_PG", "test-pg"), free_port())
    started = server.start()
    yield server
    if started:
        server.stop()


@pytest.fixture(scope="session")
def app_server_url(embedded_postgres) -> str:
    """A URL on the application database server, used to create and drop test databases."""
    return os.environ.get("TICKETFLOW_DATABASE_URL") or embedded_postgres.url("postgres")


@pytest.fixture(scope="session")
def database_factory(app_server_url):
    """Creates uniquely named, empty databases on the application server; drops them at the end."""
    created: list[str] = []

    def create() -> str:
        name = f"ticketflow_test_{uuid.uuid4().hex[:10]}"
        with closing(psycopg.connect(app_server_url, autocommit=True)) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return _with_database(app_server_url, name)

    yield create
    with closing(psycopg.connect(app_server_url, autocommit=True)) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def app_db_url(database_factory) -> str:
    """One migrated application database for the integration tests."""
    url = database_factory()
    migrate(url)
    return url


@pytest.fixture
def db(app_db_url) -> Iterator[psycopg.Connection]:
    """An autocommit connection to the migrated test database, emptied before the test."""
    with closing(psycopg.connect(app_db_url, autocommit=True)) as conn:
        conn.execute(f"TRUNCATE {', '.join(APP_TABLES)} RESTART IDENTITY CASCADE")
        yield conn


@pytest.fixture
def run_concurrently(app_db_url):
    """Runs `work(conn, name)` in one thread per name, each on its own connection to the test database,
    started together; returns each name's result and re-raises the first error any of them hit."""
    return lambda names, work, timeout=120: _run_concurrently(app_db_url, names, work, timeout)


def _run_concurrently(database_url: str, names: list[str], work, timeout: float) -> dict:
    import threading

    barrier, results, errors = threading.Barrier(len(names)), {}, []

    def worker(name):
        try:
            with closing(psycopg.connect(database_url, autocommit=True)) as conn:
                barrier.wait()
                results[name] = work(conn, name)
        except Exception as exc:  # handed to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    if errors:
        raise errors[0]
    return results
