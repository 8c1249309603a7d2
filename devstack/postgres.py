"""An embedded PostgreSQL server for `make run` and `make test`.

It runs the PostgreSQL binaries that the `pgserver` wheel ships, so a
machine needs no database server, no root and no system service. Unlike
pgserver's own launcher it listens on TCP (127.0.0.1 only), so Airflow, the
DAGs and the tests connect with the same plain `postgresql://` URLs they use
against a real server. When the process runs as root, PostgreSQL (which
refuses root) runs as pgserver's unprivileged system user.

Every connection needs a password (scram-sha-256), also on loopback: a
trusted server would make any local user a superuser. The passwords are
generated on first start and kept, readable by their owner only, in
`<data dir>.passwords.json` beside the data directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

# The binaries inside the pgserver wheel (its Python API is not used: it
# listens on a Unix socket only and stops the server behind our back).
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("pgserver").origin).parent / "pginstall" / "bin"
SUPERUSER = "postgres"
SERVICE_USER = "pgserver"


#: The statements that give every schema of the database (but PostgreSQL's own) and every table, view, sequence,
#: function and type in them that `previous` owns to `owner`. Sequences owned by a column move with their table.
_HAND_OVER = """
    SELECT format('ALTER SCHEMA %%I OWNER TO %%I', n.nspname, %(owner)s::text)
    FROM pg_namespace n
    WHERE pg_get_userbyid(n.nspowner) = %(previous)s
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
    UNION ALL
    SELECT format('ALTER %%s %%s OWNER TO %%I',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.oid::regclass, %(owner)s::text)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE pg_get_userbyid(c.relowner) = %(previous)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype IN ('a', 'i'))
    UNION ALL
    SELECT format('ALTER ROUTINE %%s OWNER TO %%I', p.oid::regprocedure, %(owner)s::text)
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE pg_get_userbyid(p.proowner) = %(previous)s
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
    UNION ALL
    SELECT format('ALTER TYPE %%s OWNER TO %%I', t.oid::regtype, %(owner)s::text)
    FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE pg_get_userbyid(t.typowner) = %(previous)s AND t.typtype IN ('e', 'd', 'c', 'r')
      AND (t.typrelid = 0 OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
"""


class PostgresCommandError(RuntimeError):
    """initdb or pg_ctl failed; the message carries what it said."""


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
    def passwords_file(self) -> Path:
        return self.data_dir.with_name(self.data_dir.name + ".passwords.json")

    def _passwords(self) -> dict[str, str]:
        try:
            return json.loads(self.passwords_file.read_text())
        except FileNotFoundError:
            return {}

    def password(self, role: str = SUPERUSER) -> str:
        """The role's password, made (and kept, mode 0600) the first time it is asked for."""
        known = self._passwords()
        if role not in known:
            known[role] = secrets.token_urlsafe(24)  # URL-safe: it goes into connection URLs as it is
            self.passwords_file.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                json.dump(known, out)
            self.passwords_file.chmod(0o600)
        return known[role]

    @property
    def port(self) -> int:
        """The port of the running server (it may have been started earlier on another one)."""
        running = self.running_port()
        return running if running is not None else self.requested_port

    def url(self, database: str = "postgres", role: str = SUPERUSER) -> str:
        return f"postgresql://{role}:{self.password(role)}@127.0.0.1:{self.port}/{database}"

    def _pg(self, program: str, *args: str, timeout: float = 60) -> None:
        done = subprocess.run([str(POSTGRES_BIN_PATH / program), *args], user=self._run_as, timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode:
            raise PostgresCommandError(f"{program} {' '.join(args)} exited with {done.returncode}: "
                                       f"{done.stderr.decode(errors='replace').strip()}")

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
        with tempfile.TemporaryDirectory() as scratch:
            password_file = Path(scratch) / "password"
            descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as out:
                out.write(self.password() + "\n")
            if self._run_as:  # initdb runs as the service user, who must read it
                _make_traversable(password_file)
                shutil.chown(password_file, user=self._run_as)
            self._pg(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=scram-sha-256",
                f"--pwfile={password_file}", "-E", "UTF8", "--locale=C.UTF-8", timeout=120,
            )

    def _require_passwords(self) -> None:
        """A data directory made before passwords were required (trust): give the superuser its password and
        make every connection use it. Runs once, on the first start after the upgrade."""
        hba = self.data_dir / "pg_hba.conf"
        lines = hba.read_text().splitlines()
        if not any(line.split()[-1:] == ["trust"] for line in lines if line.strip() and not line.startswith("#")):
            return
        with psycopg.connect(f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(SUPERUSER),
                                                                   sql.Literal(self.password())))
            hba.write_text("\n".join(
                " ".join([*line.split()[:-1], "scram-sha-256"]) if line.strip() and not line.startswith("#")
                and line.split()[-1] == "trust" else line for line in lines) + "\n")
            conn.execute("SELECT pg_reload_conf()")

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
        except PostgresCommandError as exc:
            log = self.log_file.read_text(errors="replace")[-3000:] if self.log_file.exists() else ""
            raise PostgresCommandError(f"embedded PostgreSQL did not start: {exc}\n{log}") from exc
        self._require_passwords()
        return True

    def stop(self) -> None:
        if self.running_port() is None:
            return
        self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def ensure_database(self, name: str, *, fresh: bool = False, owner: str = SUPERUSER) -> str:
        """Create database `name` if missing (drop it first when `fresh`), owned by `owner` (a login role made
        when missing, not a superuser); return its URL, as `owner`."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            if owner != SUPERUSER:
                password = sql.Literal(self.password(owner))
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (owner,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(owner), password))
                else:
                    conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(owner), password))
            if fresh:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            found = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                                 (name,)).fetchone()
            if found is None:
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner)))
            elif found[0] != owner:
                self._hand_over(name, found[0], owner)
        return self.url(name, owner)

    def _hand_over(self, database: str, previous: str, owner: str) -> None:
        """A database made before it had an owner of its own (the superuser made everything): the database,
        its schemas and everything in them now belong to `owner`, so the DAGs stop connecting as a superuser.
        (REASSIGN OWNED cannot take objects from the bootstrap superuser.)"""
        with psycopg.connect(self.url(database), autocommit=True) as conn, conn.transaction():
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(sql.Identifier(database),
                                                                         sql.Identifier(owner)))
            for (change,) in conn.execute(_HAND_OVER, {"previous": previous, "owner": owner}).fetchall():
                conn.execute(change)
