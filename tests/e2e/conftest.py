"""The real Airflow: `make run` itself, started once per session on free ports; the Celery stack beside it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psutil
import pytest
import requests

from devstack.postgres import EmbeddedPostgres, PostgresCommandError
from devstack.stack import APP_DATABASE, APP_DATABASE_OWNER, LocalStack, Ports, local_postgres, local_stack
from ticketflow.settings import PROJECT_ROOT

TERMINAL = {"success", "failed"}
#: A killed worker's task is failed and retried after 30 s instead of production's 2 minutes (config/airflow.env):
#: the fault tests wait for it, and the suite has minutes, not hours.
#: The DAG files do not change while the tests run: the DAG processors parse them once and then every 10 minutes
#: instead of every 30 s (each parse of every file costs CPU the tests share).
PARSE_ONCE = {"AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600"}
CELERY_TEST_TIMEOUTS = {"AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
                        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5", **PARSE_ONCE}


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

    def wait_for_quiet_window(self, dag_id: str, seconds: float, timeout: float = 600) -> None:
        """Wait until no run of `dag_id` is active and its next scheduled run is `seconds` away or more.

        The stack runs the DAGs on their schedule, as `make run` does; a test that counts what one run
        changed must not race a scheduled run. The next run's time comes from Airflow itself, so this
        holds whatever the schedule.
        """
        deadline = time.monotonic() + timeout
        while True:
            active = [r for r in self.runs(dag_id) if r["state"] in ("queued", "running")]
            next_run = self.get(f"dags/{dag_id}").get("next_dagrun_run_after")
            now = datetime.now(UTC)  # after the queries, which a loaded API server may answer slowly
            far_enough = next_run is None or datetime.fromisoformat(next_run) - now >= timedelta(seconds=seconds)
            if not active and far_enough:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id}: no quiet {seconds:.0f} s in {timeout:.0f} s (active: {active},"
                                     f" next run {next_run})")
            time.sleep(2)


#: The e2e stack's schedules (make run's own settings): the one test of a schedule waits a minute, not five, and
#: the other scheduled DAGs run once for their latest tick when the stack starts, then not again in a session, so
#: what a test counts never races a scheduled run; each test triggers the runs it needs. The two DAGs the
#: backfill tests replay keep five-minute intervals, on the day and hour those tests backfill (on that hour of
#: the year the quiet windows wait for them, as they would for any schedule).
BACKFILLED = "*/5 10 10 1 *"  # January 10, 10:00 to 10:55 UTC
E2E_SCHEDULES = {
    "TICKETFLOW_SCHEDULE_RESERVATION_LIFECYCLE": "* * * * *",
    "TICKETFLOW_SCHEDULE_RECURRING_TICKETS": BACKFILLED,
    "TICKETFLOW_SCHEDULE_EVENT_LIFECYCLE": BACKFILLED,
    **{f"TICKETFLOW_SCHEDULE_{dag_id.upper()}": "0 0 1 1 *"
       for dag_id in ("event_archive", "tdx_ticket_queue", "alerts", "retention")},
}

#: The Celery stack's schedules: once a year. Its tests trigger every run they count, and stop workers, the
#: scheduler and Redis in between; a scheduled run in flight then would hold `max_active_runs` and keep the run a
#: test triggered from ever being queued.
CELERY_SCHEDULES = {f"TICKETFLOW_SCHEDULE_{dag_id.upper()}": "0 0 1 1 *" for dag_id in (
    "recurring_tickets", "reservation_lifecycle", "event_lifecycle", "event_archive", "tdx_ticket_queue", "alerts",
    "retention")}


class MakeRun:
    """`make run` as a new user runs it, in a terminal of its own: free ports, a state directory of its own.

    Ctrl-C in a terminal signals the whole foreground process group; `interrupt` does the same. What it
    started is found by its state directory (`TICKETFLOW_LOCAL_DIR` in a process's environment, or the
    directory on its command line: PostgreSQL leaves make's process tree when pg_ctl starts it).
    """

    BANNER_END = "Press Ctrl-C to stop everything."
    COMPONENTS = ("api_server", "airflow scheduler", "airflow dag-processor", "airflow triggerer",
                  "devstack.standins", "devstack.logserver", "postgres -D")

    def __init__(self, home: Path, ports: Ports, target: str = "run"):
        self.home, self.ports, self.target = home, ports, target
        self.output: list[str] = []
        self.banner_at: float | None = None
        self.at_banner: dict[str, tuple[int, float]] = {}
        env = {**os.environ, **ports.environment(), **E2E_SCHEDULES, **PARSE_ONCE, "TICKETFLOW_LOCAL_DIR": str(home),
               "TICKETFLOW_DEMO_DATA": "false"}
        env.pop("TICKETFLOW_DATABASE_URL", None)  # its own embedded database, never one the tests were given
        self.make = subprocess.Popen(["make", "--no-print-directory", target], cwd=PROJECT_ROOT, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.make.stdout is not None
        for line in self.make.stdout:
            self.output.append(line)
            if line.startswith(self.BANNER_END):
                self.banner_at = time.monotonic()

    def components(self) -> dict[str, tuple[int, float]]:
        """make, the stack's own process and each long-lived component: which process it is (pid, start time).
        Database sessions and task processes come and go; these must not."""
        found = {}
        for process in self.processes():
            try:
                line, identity = " ".join(process.cmdline()), (process.pid, process.create_time())
            except psutil.Error:
                continue
            for name in (*self.COMPONENTS, f"make --no-print-directory {self.target}", "devstack.stack run"):
                if name in line and (name != "postgres -D" or "postgres: " not in line):
                    found.setdefault(name, identity)
        return found

    def wait_for_banner(self, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while self.banner_at is None:
            if self.make.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"make {self.target} printed no banner:\n{''.join(self.output)[-5000:]}")
            time.sleep(0.5)
        return "".join(self.output)

    def processes(self) -> list[psutil.Process]:
        """Every process this `make run` started that is still there: make's descendants (setproctitle hides
        the API server's environment), and whatever else names its state directory."""
        found = []
        with contextlib.suppress(psutil.NoSuchProcess):
            found = [psutil.Process(self.make.pid), *psutil.Process(self.make.pid).children(recursive=True)]
        for process in psutil.process_iter():
            if process in found:
                continue
            try:
                if process.pid == self.make.pid or str(self.home) in " ".join(process.cmdline()) \
                        or process.environ().get("TICKETFLOW_LOCAL_DIR") == str(self.home):
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def listening(self) -> dict[int, set[str]]:
        """The addresses each of its ports listens on."""
        wanted = set(self.ports.environment().values())
        found: dict[int, set[str]] = {}
        for connection in psutil.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN and str(connection.laddr.port) in wanted:
                found.setdefault(connection.laddr.port, set()).add(connection.laddr.ip)
        return found

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the terminal's foreground process group."""
        os.killpg(self.make.pid, signal.SIGINT)

    def kill(self) -> None:
        """After a failed test: nothing may outlive the session."""
        with contextlib.suppress(PostgresCommandError):
            EmbeddedPostgres(self.home / "pg", self.ports.postgres).stop()
        for process in self.processes():
            with contextlib.suppress(psutil.Error):
                process.kill()


@contextmanager
def _state_directory(name: str) -> Iterator[Path]:
    """A fresh state directory for a stack, under .local/ rather than pytest's temporary folder: pytest makes
    that folder private again whenever a session starts, and PostgreSQL (as pgserver when root) must reach it."""
    parent = PROJECT_ROOT / ".local"
    parent.mkdir(exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def make_run() -> Iterator[MakeRun]:
    """The session's Airflow: `make run` itself, started once. test_front_door.py stops it, last."""
    with _state_directory("e2e-make-run") as home:
        started = MakeRun(home, Ports.free())
        try:
            started.wait_for_banner()
            started.at_banner = started.components()  # what the last test finds again, however long the rest took
            yield started
        finally:
            if started.make.poll() is None or started.processes():
                started.kill()


@pytest.fixture(scope="session")
def stack(make_run) -> LocalStack:
    """A handle on the running `make run` stack: its URLs, database, mailbox, logs and CLI environment."""
    postgres = EmbeddedPostgres(make_run.home / "pg", make_run.ports.postgres)
    return LocalStack(make_run.home, make_run.ports, postgres, postgres.url(APP_DATABASE, APP_DATABASE_OWNER))


def pytest_collection_modifyitems(items):
    """The test that stops `make run` goes last, whatever the order of collection."""
    items.sort(key=lambda item: item.get_closest_marker("stops_the_stack") is not None)


@pytest.fixture
def api(stack) -> AirflowApi:
    return AirflowApi(stack)


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


@pytest.fixture(scope="module")
def celery_stack():
    """The same platform on the CeleryExecutor: Redis and two Celery workers, as docker-compose.yaml runs it.

    Built by `local_stack`, from the same settings `make run-celery` reads, in a state directory and on
    ports of its own. Module-scoped: it runs only while its tests do, which stop and restart its parts.
    """
    redis_url = os.environ.get("TICKETFLOW_REDIS_URL") or None
    if not redis_url and not shutil.which("redis-server"):
        pytest.skip("redis-server not found: install Debian's redis-server package (make test does so when run as"
                    " root) or set TICKETFLOW_REDIS_URL")
    with _state_directory("e2e-celery") as home, _environment({
            **Ports.free().environment(), **CELERY_SCHEDULES, "TICKETFLOW_LOCAL_DIR": str(home),
            "TICKETFLOW_DEMO_DATA": "false", "TICKETFLOW_DATABASE_URL": ""}):
        postgres = local_postgres()
        try:
            local = local_stack(postgres, celery_workers=2)
            local.overrides = CELERY_TEST_TIMEOUTS
            with _running(local):
                yield local
        finally:
            postgres.stop()


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def celery_api(celery_stack) -> AirflowApi:
    return AirflowApi(celery_stack)


@pytest.fixture
def browser():
    """Headless Chromium (skipped, with the reason, where there is none)."""
    from tests.e2e.browsing import CHROMIUM_FLAGS, chromium

    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def stack_db(stack):
    """An autocommit connection to the stack's application database, events emptied."""
    import psycopg

    with psycopg.connect(stack.app_db_url, autocommit=True) as conn:
        conn.execute("TRUNCATE events, automation_runs RESTART IDENTITY CASCADE")
        yield conn
