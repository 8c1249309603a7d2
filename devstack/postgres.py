"""An embedded PostgreSQL server for `make run` and `make test`.

It runs the PostgreSQL binaries that the `pgserver` wheel ships, so a
machine needs no database server, no root and no system service. Unlike
pgserver's own launcher it listens on TCP (127.0.0.1 only), so Airflow, the
DAGs and the tests connect with the same plain `postgresql://` URLs they use
against a real server. When the process runs as root, PostgreSQL (which
refuses root) runs as pgserver's unprivileged system user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import psycopg
from psycopg import sql

# The binaries inside the pgserver wheel (its Python API is not used: it
# listens on a Unix socket only and stops the server behind our back).
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("pgserver").origin).parent / "pginstall" / "bin"
SUPERUSER = "postgres"
SERVICE_USER = "pgserver"


def _ensure_service_user() -> str:
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", SERVICE_USER], check=True)
    return SERVICE_USER


def _make_traversable(path: Path) -> None:
    """Let the service user pass through the data directory's parents (search only, no listing)."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | 0o011)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int, *, durable: bool = False):
        """`durable` keeps PostgreSQL's default fsync; off by default, as data here is disposable."""
        self.data_dir = Path(data_dir).resolve()
        self.requested_port = port
        self.durable = durable
        self._run_as = _ensure_service_user() if os.geteuid() == 0 else None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def port(self) -> int:
        """The port of the running server (it may have been started earlier on another one)."""
        running = self.running_port()
        return running if running is not None else self.requested_port

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _pg(self, program: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / program), *args],
            check=True,
            user=self._run_as,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def running_port(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (OSError, ValueError, IndexError):
            return None
        return port

    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            _make_traversable(self.data_dir)
            shutil.chown(self.data_dir, user=self._run_as)
        self.data_dir.chmod(0o700)
        self._pg(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--locale=C.UTF-8", timeout=120,
        )

    def start(self) -> bool:
        """Start the server unless it already runs (then False); initialise the data directory the first time."""
        if self.running_port() is not None:
            return False
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        options = f"-h 127.0.0.1 -p {self.requested_port} -k '' -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off"
        try:
            self._pg("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w", "-t", "60",
                     "-o", options, "start", timeout=90)
        except subprocess.CalledProcessError as exc:
            log = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            reason = exc.stderr.decode(errors="replace")
            raise RuntimeError(f"embedded PostgreSQL did not start: {reason}\n{log}") from exc
        return True

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def ensure_database(self, name: str, *, fresh: bool = False) -> str:
        """Create database `name` if missing (drop it first when `fresh`); return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if fresh:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)
