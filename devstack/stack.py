"""The local Ticketflow stack: what `make run` starts and the end-to-end tests start too.

Embedded PostgreSQL (application and Airflow databases), the stand-ins, and
Airflow's API server, scheduler, DAG processor and triggerer, on the
LocalExecutor, or on the CeleryExecutor with Redis and Celery workers (the
shape of docker-compose.yaml). Every child runs in its own process group and is
stopped as a group, so workers and task processes go with their parent.

    python -m devstack.stack run            # make run
    python -m devstack.stack run --celery   # make run-celery
    python -m devstack.stack migrate        # make migrate
    python -m devstack.stack shell          # make shell
    python -m devstack.stack psql           # make psql

This package is development tooling: production (the image, compose) never
imports it. Its state lives in `.local/` (`TICKETFLOW_LOCAL_DIR` moves it).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit, urlunsplit

import psutil
import psycopg
import requests
from cryptography.fernet import Fernet

from devstack import free_port
from devstack.postgres import POSTGRES_BIN_PATH, EmbeddedPostgres
from devstack.standins import SMTP_PASSWORD, SMTP_USER
from ticketflow import settings
from ticketflow.migrate import main as migrate_main
from ticketflow.migrate import migrate
from ticketflow.settings import PROJECT_ROOT, SQL_DIR, database_url_from_env

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: The components that would start a log server on every interface; devstack.logserver serves on loopback.
SKIP_SERVE_LOGS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
VIEWER_USER = "viewer"  # may look at everything and change nothing: Airflow's viewer role
VIEWER_PASSWORD = "viewer"
TDX_BEID = "local-beid"
TDX_WEB_SERVICES_KEY = "local-web-services-key"
#: The application database of the local stack and its owner (a login role, not a superuser).
APP_DATABASE = APP_DATABASE_OWNER = "ticketflow"


@dataclass(frozen=True)
class Ports:
    api: int = 8080
    postgres: int = 54329
    tts: int = 8091
    tdx: int = 8092
    smtp: int = 8025
    worker_logs: int = 8793
    trigger_logs: int = 8794
    scheduler_health: int = 8974
    redis: int = 6390
    webhook: int = 8093

    @classmethod
    def free(cls) -> Ports:
        """Fresh ports for a second stack beside a running `make run` (the tests)."""
        chosen: set[int] = set()
        while len(chosen) < len(fields(cls)):
            chosen.add(free_port())
        return cls(*sorted(chosen))

    @staticmethod
    def variable(name: str) -> str:
        """The environment variable that sets port `name`: `TICKETFLOW_<NAME>_PORT` (`TICKETFLOW_PG_PORT`)."""
        return "TICKETFLOW_PG_PORT" if name == "postgres" else f"TICKETFLOW_{name.upper()}_PORT"

    def environment(self) -> dict[str, str]:
        """These ports as the variables `from_env` reads."""
        return {self.variable(port.name): str(getattr(self, port.name)) for port in fields(self)}

    @classmethod
    def from_env(cls) -> Ports:
        """The defaults, each replaced by its variable when set."""
        chosen = {}
        for port in fields(cls):
            variable = cls.variable(port.name)
            raw = os.environ.get(variable)
            if raw:
                if not raw.isdigit() or not 0 < int(raw) < 65536:
                    raise StackError(f"{variable} must be a TCP port number (1-65535), got {raw!r}")
                chosen[port.name] = int(raw)
        return cls(**chosen)


class StackError(RuntimeError):
    pass


def shared_airflow_settings() -> dict[str, str]:
    """`config/airflow.env`: the Airflow settings docker-compose.yaml reads too (its `env_file`)."""
    found = {}
    for line in (PROJECT_ROOT / "config" / "airflow.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found[key.strip()] = value.strip()
    return found


def connections(ports: Ports, app_db_url: str) -> dict[str, str]:
    """The connections of the local stack (ticketing_db, tts_api, tdx_api, smtp_default, alerts_webhook), as
    Airflow reads them from the environment."""
    return {
        "AIRFLOW_CONN_TICKETING_DB": app_db_url,
        "AIRFLOW_CONN_TTS_API": json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{ports.tts}"}),
        "AIRFLOW_CONN_TDX_API": json.dumps({
            "conn_type": "http", "host": f"http://127.0.0.1:{ports.tdx}/TDWebApi/api",
            "login": TDX_BEID, "password": TDX_WEB_SERVICES_KEY,
            "extra": {"app_id": 46, "asset_app_id": 45},
        }),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": ports.smtp, "login": SMTP_USER, "password": SMTP_PASSWORD,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "ticketflow@localhost"},
        }),
        # The whole webhook URL is the host, as for a Slack incoming webhook.
        "AIRFLOW_CONN_ALERTS_WEBHOOK": json.dumps({
            "conn_type": "http", "host": f"http://127.0.0.1:{ports.webhook}/services/local/alerts"}),
    }


class LocalStack:
    def __init__(self, home: Path, ports: Ports, postgres: EmbeddedPostgres, app_db_url: str,
                 *, airflow_db: str = "airflow", fresh_airflow_db: bool = False, demo_data: bool = True,
                 celery_workers: int = 0, redis_url: str | None = None):
        """`celery_workers` > 0: the CeleryExecutor with that many workers and Redis (ours, or `redis_url`'s)."""
        self.home = Path(home)
        self.ports = ports
        self.postgres = postgres
        self.app_db_url = app_db_url
        self.airflow_db = airflow_db
        self.fresh_airflow_db = fresh_airflow_db
        self.demo_data = demo_data
        self.logs = self.home / "logs"
        self.mailbox = self.home / "mailbox"
        self.webhook_log = self.home / "webhook-posts.jsonl"
        self.airflow_home = self.home / "airflow"
        self.celery_workers = celery_workers
        self.own_redis = celery_workers > 0 and not redis_url
        self.broker_url = redis_url or f"redis://127.0.0.1:{ports.redis}/0"
        #: Airflow settings over config/airflow.env's, for this stack only (the tests shorten timeouts).
        self.overrides: dict[str, str] = {}
        self._children: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}
        self._log_offsets: dict[str, int] = {}

    @property
    def executor(self) -> str:
        return "CeleryExecutor" if self.celery_workers else "LocalExecutor"

    @property
    def worker_names(self) -> list[str]:
        return [f"worker{n}" for n in range(1, self.celery_workers + 1)]

    @property
    def pids(self) -> dict[str, int]:
        """Each running component's process id (it leads its own process group): to measure what each costs."""
        return {name: child.pid for name, child in self._children.items()}

    @property
    def api_url(self) -> str:
        return f"http://localhost:{self.ports.api}"

    def _secrets(self) -> dict[str, str]:
        """Fernet key and JWT secret, made once and kept so restarts can read old data and tokens."""
        path = self.airflow_home / "secrets.json"
        if not path.exists():
            _write_private(path, json.dumps({"fernet_key": Fernet.generate_key().decode(),
                                             "jwt_secret": secrets.token_urlsafe(32)}))
        return json.loads(path.read_text())

    def airflow_env(self) -> dict[str, str]:
        keys = self._secrets()
        passwords = self.airflow_home / "passwords.json"
        _write_private(passwords, json.dumps({ADMIN_USER: ADMIN_PASSWORD, VIEWER_USER: VIEWER_PASSWORD}))
        venv_bin = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            **shared_airflow_settings(),
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            # include/ is what production has; the project root adds devstack (the log server's hostname).
            "PYTHONPATH": os.pathsep.join((str(PROJECT_ROOT / "include"), str(PROJECT_ROOT))),
            "TICKETFLOW_ROOT": str(PROJECT_ROOT),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__EXECUTOR": self.executor,
            "AIRFLOW__CORE__FERNET_KEY": keys["fernet_key"],
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url(self.airflow_db).replace(
                "postgresql://", "postgresql+psycopg2://"),
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.ports.api),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.worker_logs),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.trigger_logs),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.logserver.hostname",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_HOST": "127.0.0.1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports.scheduler_health),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            **connections(self.ports, self.app_db_url),
            # Retention cleans Airflow's metadata through it (a task process cannot reach that database itself).
            "AIRFLOW_CONN_AIRFLOW_METADATA_DB": self.postgres.url(self.airflow_db),
        }
        if self.celery_workers:
            env["AIRFLOW__CELERY__BROKER_URL"] = self.broker_url
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + self.postgres.url(self.airflow_db)
        env.pop("TICKETFLOW_DATABASE_URL", None)  # the DAGs read ticketing_db, nothing else
        return {**env, **self.overrides}

    def airflow(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run one `airflow` CLI command against this stack."""
        return subprocess.run(["airflow", *args], env=self.airflow_env(), capture_output=True, text=True,
                              timeout=timeout, cwd=self.home)

    def _airflow_or_fail(self, *args: str) -> None:
        done = self.airflow(*args)
        if done.returncode != 0:
            raise StackError(f"airflow {' '.join(args[:2])} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def prepare(self) -> None:
        """Databases, migrations (both), demo data: everything that must exist before Airflow starts."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        self.airflow_home.chmod(0o700)  # airflow.cfg holds the key that signs log requests; secrets.json, the rest
        self.postgres.ensure_database(self.airflow_db, fresh=self.fresh_airflow_db)
        migrate(self.app_db_url)
        self._airflow_or_fail("db", "migrate")
        self._airflow_or_fail("pools", "set", settings.TDX_POOL, str(settings.TDX_POOL_SLOTS),
                              "TeamDynamix Web API: batches calling TDX at once")
        if self.demo_data:
            load_demo_data(self.app_db_url)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self._commands[name] = (argv, env)
        log = open(self.logs / f"{name}.log", "ab")
        self._log_offsets[name] = log.tell()
        self._children[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home,
                                                preexec_fn=_terminate_with_parent)
        log.close()

    def check_ports_free(self) -> None:
        """Every port this stack will listen on, free now: a clear error instead of a component dying later."""
        wanted = ["api", "tts", "tdx", "smtp", "webhook", "worker_logs", "trigger_logs", "scheduler_health",
                  *(["redis"] if self.own_redis else [])]
        for name in wanted:
            port = getattr(self.ports, name)
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError as exc:
                    raise StackError(f"port {port} is in use ({exc.strerror}): another make run or another program"
                                     f" holds it; stop that, or choose another port with {Ports.variable(name)}"
                                     ) from None

    def start(self, timeout: float = 240) -> None:
        self.check_ports_free()
        env = self.airflow_env()
        self._spawn("standins", [sys.executable, "-m", "devstack.standins",
                                 "--tts-port", str(self.ports.tts), "--tdx-port", str(self.ports.tdx),
                                 "--smtp-port", str(self.ports.smtp), "--mailbox", str(self.mailbox),
                                 "--tdx-beid", TDX_BEID, "--tdx-key", TDX_WEB_SERVICES_KEY,
                                 "--webhook-port", str(self.ports.webhook), "--webhook-log", str(self.webhook_log)],
                    env)
        # Task logs on loopback only (Airflow's own log servers listen on every interface: they are skipped).
        self._spawn("logserver", [sys.executable, "-m", "devstack.logserver", "--port", str(self.ports.worker_logs),
                                  "--port", str(self.ports.trigger_logs)], env)
        if self.own_redis:
            self._start_redis(env)
        for component in AIRFLOW_COMPONENTS:
            self._spawn(component, ["airflow", component, *SKIP_SERVE_LOGS.get(component, ())], env)
        for name in self.worker_names:
            self._spawn(name, ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"],
                        env)
        self.wait_healthy(timeout)
        for name in self.worker_names:
            self.wait_for_worker(name, timeout)

    def _start_redis(self, env: dict[str, str]) -> None:
        """Redis on loopback, with an append-only file: queued tasks survive a restart, as in production."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server not found: install Debian's redis-server package (make run-celery does"
                             " when it runs as root) or set TICKETFLOW_REDIS_URL to a Redis of yours")
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        self._spawn("redis", [binary, "--bind", "127.0.0.1", "--port", str(self.ports.redis), "--dir", str(data),
                              "--appendonly", "yes", "--save", ""], env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self.check_children()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.ports.redis)) == 0:
                    return
            time.sleep(0.2)
        raise StackError(f"Redis did not listen on {self.ports.redis}; see {self.logs / 'redis.log'}")

    def wait_for_worker(self, name: str, timeout: float = 120) -> None:
        """Until the Celery worker says it is ready (in its log, after this start)."""
        log = self.logs / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            with open(log, "rb") as written:
                written.seek(self._log_offsets[name])
                if f"{name}@" in (since_start := written.read().decode(errors="replace")) and " ready." in since_start:
                    return
            time.sleep(1)
        raise StackError(f"Celery {name} not ready after {timeout:.0f}s; see {log}")

    def kill(self, name: str, signum: int = signal.SIGKILL) -> None:
        """Signal one component's whole process group (a worker and its task processes) and reap it."""
        child = self._children.pop(name)
        _signal_group(child.pid, signum)
        child.wait()

    def revive(self) -> list[str]:
        """Start again every component that exited (what `restart: always` does in compose); which ones."""
        dead = [name for name, child in self._children.items() if child.poll() is not None]
        for name in dead:
            self._children.pop(name)
            self.restart(name)
        return dead

    def restart(self, name: str, timeout: float = 120) -> None:
        """Start a component again, as it was started (a worker waits until it is ready)."""
        argv, env = self._commands[name]
        self._spawn(name, argv, env)
        if name in self.worker_names:
            self.wait_for_worker(name, timeout)

    def check_children(self) -> None:
        for name, child in self._children.items():
            if child.poll() is not None:
                raise StackError(f"{name} exited with {child.returncode}; see {self.logs / (name + '.log')}")

    def wait_healthy(self, timeout: float) -> None:
        """Until the API server reports the scheduler, DAG processor and triggerer healthy."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            self.check_children()
            try:
                health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=5).json()
                unhealthy = [k for k, v in health.items() if (v or {}).get("status") != "healthy"]
                if not unhealthy:
                    return
                last = f"not yet healthy: {', '.join(unhealthy)}"
            except (requests.RequestException, ValueError) as exc:
                last = str(exc)
            time.sleep(1)
        raise StackError(f"Airflow did not become healthy in {timeout:.0f}s ({last}); logs in {self.logs}")

    def token(self, username: str = ADMIN_USER, password: str = ADMIN_PASSWORD) -> str:
        answer = requests.post(f"{self.api_url}/auth/token",
                               json={"username": username, "password": password}, timeout=10)
        answer.raise_for_status()
        return answer.json()["access_token"]

    def wait_for_dags(self, dag_ids: set[str], timeout: float = 180) -> None:
        """Until every DAG in `dag_ids` is parsed and listed by the REST API."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        deadline = time.monotonic() + timeout
        missing = set(dag_ids)
        while time.monotonic() < deadline:
            self.check_children()
            listed = requests.get(f"{self.api_url}/api/v2/dags", params={"limit": 100}, headers=headers, timeout=10)
            missing = set(dag_ids) - {d["dag_id"] for d in listed.json().get("dags", [])}
            if not missing:
                return
            time.sleep(1)
        raise StackError(f"DAGs not parsed after {timeout:.0f}s: {sorted(missing)}; see {self.logs}")

    def stop(self) -> None:
        """Stop every child's whole process group: TERM, a grace period, then KILL.

        A child that already died (and was reaped) may have left its group
        behind, LocalExecutor workers for instance: each group is signalled
        on its own, and every group is sent KILL at the end.
        """
        family: list[psutil.Process] = []
        for child in self._children.values():
            try:
                family += psutil.Process(child.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for child in self._children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self._children.values():
            _signal_group(child.pid, signal.SIGKILL)
            child.wait()
        _, alive = psutil.wait_procs(family, timeout=5)
        for process in alive:
            process.kill()
        self._children.clear()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read, from the first byte on, and whole: readers (the API server reads
    the passwords file at every login) see the old text or the new, never an empty file."""
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    os.replace(scratch, path)


def _terminate_with_parent() -> None:
    """In a child, before exec: the kernel sends it SIGTERM when the stack's process dies, however it dies
    (SIGKILL, the OOM killer), so no component outlives it holding its ports."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


def load_demo_data(database_url: str) -> bool:
    """Load `sql/demo_data.sql` into an empty database; leave a used one alone."""
    with closing(psycopg.connect(database_url, autocommit=True)) as conn, conn.transaction():
        conn.execute("LOCK TABLE workflows IN EXCLUSIVE MODE")
        if conn.execute("SELECT EXISTS (SELECT 1 FROM workflows)").fetchone()[0]:
            return False
        conn.execute((SQL_DIR / "demo_data.sql").read_text())
    return True


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def local_dir() -> Path:
    """Where the local stack keeps its state: `.local/`, or `TICKETFLOW_LOCAL_DIR`."""
    return Path(os.environ.get("TICKETFLOW_LOCAL_DIR") or PROJECT_ROOT / ".local").resolve()


def local_postgres() -> EmbeddedPostgres:
    return EmbeddedPostgres(local_dir() / "pg", Ports.from_env().postgres)


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("", "true", "false", "1", "0", "yes", "no"):
        return default if raw == "" else raw in ("true", "1", "yes")
    raise StackError(f"{name} must be true or false, got {raw!r}")


def _app_database_url(postgres: EmbeddedPostgres) -> str:
    """The URL `make run` gives the DAGs (as the database's owner), without creating anything."""
    try:
        with psycopg.connect(postgres.url(), autocommit=True, connect_timeout=5) as conn:
            found = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                 (APP_DATABASE,)).fetchone()
    except psycopg.OperationalError:
        found = None  # not running: the URL it will have
    return postgres.url(APP_DATABASE, found[0] if found else APP_DATABASE_OWNER)


def local_stack(postgres: EmbeddedPostgres, celery_workers: int = 0) -> LocalStack:
    """The stack `make run` (no workers) and `make run-celery` (two) run, as the environment configures it.

    Starts `postgres` and makes the application database there, unless `TICKETFLOW_DATABASE_URL` names one.
    """
    demo_data = _flag("TICKETFLOW_DEMO_DATA", default=True)
    postgres.start()
    app_db_url = database_url_from_env() or postgres.ensure_database(APP_DATABASE, owner=APP_DATABASE_OWNER)
    return LocalStack(local_dir(), Ports.from_env(), postgres, app_db_url, celery_workers=celery_workers,
                      demo_data=demo_data, redis_url=os.environ.get("TICKETFLOW_REDIS_URL") or None)


def _lock(home: Path) -> IO[str] | None:
    """The state directory for this `make run` alone (released when the process ends, however it ends)."""
    home.mkdir(parents=True, exist_ok=True)
    lock = open(home / "stack.lock", "a+")  # held open for the life of the process
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        print(f"Ticketflow is already running from {home} (process {lock.read().strip() or '?'}): stop it first,"
              " or give this one another TICKETFLOW_LOCAL_DIR and other ports", file=sys.stderr, flush=True)
        lock.close()
        return None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def run(celery_workers: int = 0) -> int:
    # Ctrl-C, TERM and a closed terminal (HUP) all stop everything. SIGINT is set explicitly: a shell that starts
    # `make run` in the background (a script, CI) leaves SIGINT ignored, and Python would never raise
    # KeyboardInterrupt.
    for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop, _raise_keyboard_interrupt)
    started = time.monotonic()
    lock = _lock(local_dir())
    if lock is None:
        return 1
    postgres = local_postgres()
    stack = None
    try:
        stack = local_stack(postgres, celery_workers)
        stack.prepare()
        stack.start()
        dag_ids = {path.stem for path in (PROJECT_ROOT / "dags").glob("*.py") if not path.name.startswith("_")}
        stack.wait_for_dags(dag_ids)
        executor = stack.executor + (f" with {celery_workers} workers, broker {_redacted(stack.broker_url)}"
                                     if celery_workers else "")
        database = _redacted(stack.app_db_url) + (
            "" if database_url_from_env() else f"   (make psql; passwords in {postgres.passwords_file})")
        print(
            f"\nTicketflow is up after {time.monotonic() - started:.0f}s\n"
            f"  Airflow UI and REST API: {stack.api_url}   login: {ADMIN_USER} / {ADMIN_PASSWORD}"
            f" (read-only: {VIEWER_USER} / {VIEWER_PASSWORD})\n"
            f"  automation health:       {stack.api_url}/plugin/ticketflow-health\n"
            f"  recurring tickets:       {stack.api_url}/plugin/ticketflow-recurring\n"
            f"  executor:                {executor}\n"
            f"  application database:    {database}\n"
            f"  captured email (Maildir): {stack.mailbox}\n"
            f"  alerts webhook posts:    {stack.webhook_log}\n"
            f"  logs:                    {stack.logs}\n"
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        while True:
            stack.check_children()
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping Ticketflow...", flush=True)
        return 0
    except StackError as exc:
        print(f"\nTicketflow failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        # A second Ctrl-C must not cut the cleanup short and leave processes behind.
        for stop in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop, signal.SIG_IGN)
        try:
            if stack is not None:
                stack.stop()
        finally:
            postgres.stop()
        print("Ticketflow stopped.", flush=True)


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}{':***' if ':' in credentials else ''}{at}{host}"


def migrate_command() -> int:
    """`make migrate`: the external database when named, else the embedded one (left as found)."""
    url = database_url_from_env()
    if url:
        return migrate_main([url])
    postgres = local_postgres()
    started = postgres.start()
    try:
        return migrate_main([postgres.ensure_database(APP_DATABASE, owner=APP_DATABASE_OWNER)])
    finally:
        if started:
            postgres.stop()


def shell_command(celery_workers: int = 0) -> int:
    """`make shell`: a shell with the running stack's environment, for the `airflow` CLI."""
    postgres = local_postgres()
    stack = LocalStack(local_dir(), Ports.from_env(), postgres,
                       database_url_from_env() or _app_database_url(postgres), celery_workers=celery_workers,
                       redis_url=os.environ.get("TICKETFLOW_REDIS_URL") or None)
    shell = os.environ.get("SHELL", "bash")
    os.execvpe(shell, [shell], stack.airflow_env())


def psql_command() -> int:
    """`make psql`: psql on the application database (the external one when named, else the embedded one)."""
    url = database_url_from_env()
    if url is None:
        postgres = local_postgres()
        if postgres.running_port() is None:
            print("make psql: the embedded PostgreSQL is not running; start it with make run", file=sys.stderr)
            return 1
        url = _app_database_url(postgres)
    # The password goes through the environment: on the command line every local user would see it (ps).
    parts = urlsplit(url)
    without_password = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    env = {**os.environ, "PGUSER": unquote(parts.username or ""), "PGPASSWORD": unquote(parts.password or "")}
    psql = shutil.which("psql") or str(POSTGRES_BIN_PATH / "psql")
    os.execve(psql, [psql, without_password], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "migrate", "shell", "psql"])
    parser.add_argument("--celery", action="store_true",
                        help="the CeleryExecutor with Redis and two workers, as in docker-compose.yaml")
    args = parser.parse_args()
    workers = 2 if args.celery else 0
    commands = {"run": lambda: run(workers), "migrate": migrate_command, "shell": lambda: shell_command(workers),
                "psql": psql_command}
    return commands[args.command]()


if __name__ == "__main__":
    sys.exit(main())
