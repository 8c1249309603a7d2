"""The local Ticketflow stack: what `make run` starts and the end-to-end tests start too.

Embedded PostgreSQL (application and Airflow databases), the stand-ins, and
Airflow's API server, scheduler, DAG processor and triggerer on the
LocalExecutor. Every child runs in its own process group and is stopped as a
group, so LocalExecutor workers and task processes go with their parent.

    python -m ticketflow.dev.stack run       # make run
    python -m ticketflow.dev.stack migrate   # make migrate
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import dataclass, fields
from pathlib import Path

import psutil
import psycopg
import requests
from cryptography.fernet import Fernet

from ticketflow import settings
from ticketflow.dev import free_port
from ticketflow.dev.postgres import EmbeddedPostgres
from ticketflow.migrate import main as migrate_main
from ticketflow.migrate import migrate
from ticketflow.settings import PROJECT_ROOT, SQL_DIR, database_url_from_env

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"
VIEWER_USER = "viewer"  # may look at everything and change nothing: Airflow's viewer role
VIEWER_PASSWORD = "viewer"
TDX_BEID = "local-beid"
TDX_WEB_SERVICES_KEY = "local-web-services-key"
LOCAL_DIR = PROJECT_ROOT / ".local"


@dataclass(frozen=True)
class Ports:
    api: int = 8080
    postgres: int = 54329
    tts: int = 8091
    tdx: int = 8092
    smtp: int = 8025
    worker_logs: int = 8793
    trigger_logs: int = 8794

    @classmethod
    def free(cls) -> "Ports":
        """Fresh ports for a second stack beside a running `make run` (the tests)."""
        return cls(**{f.name: free_port() for f in fields(cls)})


class StackError(RuntimeError):
    pass


def connections(ports: Ports, app_db_url: str) -> dict[str, str]:
    """The CONTRACT.md connections of the local stack, as Airflow reads them from the environment."""
    return {
        "AIRFLOW_CONN_TICKETING_DB": app_db_url,
        "AIRFLOW_CONN_TTS_API": json.dumps({"conn_type": "http", "host": f"http://127.0.0.1:{ports.tts}"}),
        "AIRFLOW_CONN_TDX_API": json.dumps({
            "conn_type": "http", "host": f"http://127.0.0.1:{ports.tdx}/TDWebApi/api",
            "login": TDX_BEID, "password": TDX_WEB_SERVICES_KEY,
            "extra": {"app_id": 46, "asset_app_id": 45},
        }),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps({
            "conn_type": "smtp", "host": "127.0.0.1", "port": ports.smtp,
            "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "ticketflow@localhost"},
        }),
    }


class LocalStack:
    def __init__(self, home: Path, ports: Ports, postgres: EmbeddedPostgres, app_db_url: str,
                 *, airflow_db: str = "airflow", fresh_airflow_db: bool = False, demo_data: bool = True):
        self.home = Path(home)
        self.ports = ports
        self.postgres = postgres
        self.app_db_url = app_db_url
        self.airflow_db = airflow_db
        self.fresh_airflow_db = fresh_airflow_db
        self.demo_data = demo_data
        self.logs = self.home / "logs"
        self.mailbox = self.home / "mailbox"
        self.airflow_home = self.home / "airflow"
        self._children: dict[str, subprocess.Popen] = {}

    @property
    def api_url(self) -> str:
        return f"http://localhost:{self.ports.api}"

    def _secrets(self) -> dict[str, str]:
        """Fernet key and JWT secret, made once and kept so restarts can read old data and tokens."""
        path = self.airflow_home / "secrets.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"fernet_key": Fernet.generate_key().decode(),
                                        "jwt_secret": secrets.token_urlsafe(32)}))
            path.chmod(0o600)
        return json.loads(path.read_text())

    def airflow_env(self) -> dict[str, str]:
        keys = self._secrets()
        passwords = self.airflow_home / "passwords.json"
        passwords.write_text(json.dumps({ADMIN_USER: ADMIN_PASSWORD, VIEWER_USER: VIEWER_PASSWORD}))
        venv_bin = str(Path(sys.executable).parent)
        env = {
            **os.environ,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(PROJECT_ROOT / "include"),
            "TICKETFLOW_ROOT": str(PROJECT_ROOT),
            "AIRFLOW_HOME": str(self.airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
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
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            **connections(self.ports, self.app_db_url),
        }
        env.pop("TICKETFLOW_DATABASE_URL", None)  # the DAGs read ticketing_db, nothing else
        return env

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
        self.postgres.ensure_database(self.airflow_db, fresh=self.fresh_airflow_db)
        migrate(self.app_db_url)
        self._airflow_or_fail("db", "migrate")
        self._airflow_or_fail("pools", "set", settings.TDX_POOL, str(settings.TDX_POOL_SLOTS),
                              "TeamDynamix Web API: batches calling TDX at once")
        if self.demo_data:
            load_demo_data(self.app_db_url)

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.logs / f"{name}.log", "ab")
        self._children[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.home)
        log.close()

    def start(self, timeout: float = 240) -> None:
        env = self.airflow_env()
        self._spawn("standins", [sys.executable, "-m", "ticketflow.dev.standins",
                                 "--tts-port", str(self.ports.tts), "--tdx-port", str(self.ports.tdx),
                                 "--smtp-port", str(self.ports.smtp), "--mailbox", str(self.mailbox),
                                 "--tdx-beid", TDX_BEID, "--tdx-key", TDX_WEB_SERVICES_KEY], env)
        for component in AIRFLOW_COMPONENTS:
            self._spawn(component, ["airflow", component], env)
        self.wait_healthy(timeout)

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


def _local_postgres() -> EmbeddedPostgres:
    return EmbeddedPostgres(LOCAL_DIR / "pg", int(os.environ.get("TICKETFLOW_PG_PORT", Ports.postgres)))


def run() -> int:
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    started = time.monotonic()
    postgres = _local_postgres()
    postgres.start()
    app_db_url = database_url_from_env() or postgres.ensure_database("ticketflow")
    stack = LocalStack(LOCAL_DIR, Ports(api=int(os.environ.get("TICKETFLOW_API_PORT", Ports.api))),
                       postgres, app_db_url)
    try:
        stack.prepare()
        stack.start()
        dag_ids = {path.stem for path in (PROJECT_ROOT / "dags").glob("*.py") if not path.name.startswith("_")}
        stack.wait_for_dags(dag_ids)
        print(
            f"\nTicketflow is up after {time.monotonic() - started:.0f}s\n"
            f"  Airflow UI and REST API: {stack.api_url}   login: {ADMIN_USER} / {ADMIN_PASSWORD}"
            f" (read-only: {VIEWER_USER} / {VIEWER_PASSWORD})\n"
            f"  automation health:       {stack.api_url}/plugin/ticketflow-health\n"
            f"  application database:    {_redacted(app_db_url)}\n"
            f"  captured email (Maildir): {stack.mailbox}\n"
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
        stack.stop()
        postgres.stop()


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{credentials.split(':')[0]}{':***' if ':' in credentials else ''}{at}{host}"


def migrate_command() -> int:
    """`make migrate`: the external database when named, else the embedded one (left as found)."""
    url = database_url_from_env()
    if url:
        return migrate_main([url])
    postgres = _local_postgres()
    started = postgres.start()
    try:
        return migrate_main([postgres.ensure_database("ticketflow")])
    finally:
        if started:
            postgres.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "migrate"])
    command = parser.parse_args().command
    return run() if command == "run" else migrate_command()


if __name__ == "__main__":
    sys.exit(main())
