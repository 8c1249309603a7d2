"""The real Airflow, started once per session exactly as `make run` starts it, on free ports."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
import requests

from devstack import free_port
from devstack.postgres import EmbeddedPostgres
from devstack.stack import LocalStack, Ports
from ticketflow.migrate import migrate
from ticketflow.settings import PROJECT_ROOT

TERMINAL = {"success", "failed"}
CELERY_TEST_PG = PROJECT_ROOT / ".local" / "test-celery-pg"


class AirflowApi:
    """The Airflow REST API with a real token, as an operator's script would use it."""

    def __init__(self, stack: LocalStack):
        self.stack = stack
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {stack.token()}"

    def url(self, path: str) -> str:
        return f"{self.stack.api_url}/api/v2/{path}"

    def get(self, path: str, **params) -> dict:
        answer = self.session.get(self.url(path), params=params, timeout=30)
        answer.raise_for_status()
        return answer.json()

    def trigger(self, dag_id: str, **body) -> dict:
        answer = self.session.post(self.url(f"dags/{dag_id}/dagRuns"), json={"logical_date": None, **body},
                                   timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def runs(self, dag_id: str, **params) -> list[dict]:
        return self.get(f"dags/{dag_id}/dagRuns", limit=100, **params)["dag_runs"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
            if run["state"] in TERMINAL:
                return run
            time.sleep(1)
        raise AssertionError(f"{dag_id} {run_id} did not finish in {timeout}s (last state {run['state']})")

    def wait_for_runs(self, dag_id: str, count: int, timeout: float = 300, **filters) -> list[dict]:
        """Until `count` runs matching `filters` exist and all have finished."""
        deadline = time.monotonic() + timeout
        runs: list[dict] = []
        while time.monotonic() < deadline:
            runs = self.runs(dag_id, **filters)
            if len(runs) >= count and all(r["state"] in TERMINAL for r in runs):
                return runs
            time.sleep(2)
        raise AssertionError(f"{dag_id}: {[(r['dag_run_id'], r['state']) for r in runs]} after {timeout}s")

    def clear(self, dag_id: str, run_id: str) -> None:
        """Clear every task of one run so the scheduler runs it again."""
        answer = self.session.post(self.url(f"dags/{dag_id}/clearTaskInstances"), timeout=30,
                                   json={"dry_run": False, "dag_run_id": run_id, "only_failed": False,
                                         "reset_dag_runs": True})
        assert answer.status_code == 200, answer.text

    def xcom(self, dag_id: str, run_id: str, task_id: str):
        return self.get(f"dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
                        "/xcomEntries/return_value")["value"]

    def wait_for_quiet_window(self, dag_id: str, seconds: float, every_minutes: int = 5) -> None:
        """Wait until no run of `dag_id` is active and its next cron tick is `seconds` away.

        The stack runs the DAGs on their schedule, as `make run` does; a test that
        counts what one run changed must not race a scheduled run.
        """
        while True:
            active = [r for r in self.runs(dag_id) if r["state"] in ("queued", "running")]
            now = datetime.now(UTC)  # after the query, which a loaded API server may answer slowly
            next_tick = now.replace(second=0, microsecond=0) + timedelta(
                minutes=every_minutes - now.minute % every_minutes)
            if not active and (next_tick - now).total_seconds() >= seconds:
                return
            time.sleep(2)


E2E_DB_USER, E2E_DB_PASSWORD = "ticketflow_e2e", "e2e-database-password"


def _with_password(url: str) -> str:
    """The stack connects as a user of its own, with a password the security tests know, so they can look
    for that password in every log."""
    if os.environ.get("TICKETFLOW_DATABASE_URL"):
        return url  # a real server: its URL carries its own credentials
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (E2E_DB_USER,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {E2E_DB_USER} LOGIN SUPERUSER PASSWORD '{E2E_DB_PASSWORD}'")
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{E2E_DB_USER}:{E2E_DB_PASSWORD}@{parts.hostname}:{parts.port}"))


@contextmanager
def _running(local: LocalStack) -> Iterator[LocalStack]:
    """Prepared, started, every DAG parsed; stopped afterwards whatever happens, as `make run` does."""
    try:
        local.prepare()
        local.start()
        local.wait_for_dags({path.stem for path in (PROJECT_ROOT / "dags").glob("*.py")})
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def stack(embedded_postgres, database_factory, tmp_path_factory):
    app_db_url = database_factory()
    migrate(app_db_url)
    app_db_url = _with_password(app_db_url)
    with _running(LocalStack(tmp_path_factory.mktemp("stack"), Ports.free(), embedded_postgres, app_db_url,
                             airflow_db="airflow_e2e", fresh_airflow_db=True, demo_data=False)) as local:
        yield local


@pytest.fixture
def api(stack) -> AirflowApi:
    return AirflowApi(stack)


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory):
    """The same platform on the CeleryExecutor: Redis and two Celery workers, as docker-compose.yaml runs it.

    It has its own embedded PostgreSQL (its tests restart it) and is module-scoped: it runs only while
    its tests do.
    """
    redis_url = os.environ.get("TICKETFLOW_REDIS_URL") or None
    if not redis_url and not shutil.which("redis-server"):
        pytest.skip("redis-server not found: install Debian's redis-server package (make test does so when run as"
                    " root) or set TICKETFLOW_REDIS_URL")
    home = tmp_path_factory.mktemp("celery-stack")
    postgres = EmbeddedPostgres(CELERY_TEST_PG, free_port())  # not under pytest's private temporary folder
    postgres.start()
    app_db_url = postgres.ensure_database("ticketflow", fresh=True)
    try:
        migrate(app_db_url)
        with _running(LocalStack(home, Ports.free(), postgres, app_db_url, fresh_airflow_db=True, demo_data=False,
                                 celery_workers=2, redis_url=redis_url)) as local:
            yield local
    finally:
        postgres.stop()


@pytest.fixture
def celery_api(celery_stack) -> AirflowApi:
    return AirflowApi(celery_stack)


@pytest.fixture
def stack_db(stack):
    """An autocommit connection to the stack's application database, events emptied."""
    import psycopg

    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE events, automation_runs RESTART IDENTITY CASCADE")
        yield conn
