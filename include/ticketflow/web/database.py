"""The API server's connections to `ticketing_db`: a small pool, opened on first use, never at import."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout


class DatabaseUnavailable(RuntimeError):
    """`ticketing_db` could not be reached in time."""


def _utc(conn: psycopg.Connection) -> None:
    conn.execute("SET TIME ZONE 'UTC'")


class Database:
    """Autocommit connections (every `conn.transaction()` is a real one), their clock in UTC."""

    def __init__(self, conninfo: Callable[[], str], max_size: int = 4, timeout: float = 3):
        self._conninfo = conninfo
        self._max_size = max_size
        self._timeout = timeout
        self._pool: ConnectionPool | None = None
        self._lock = threading.Lock()

    def _opened(self) -> ConnectionPool:
        with self._lock:
            if self._pool is None:
                # `check`: a connection the server dropped (a restart) is replaced before a request gets it.
                self._pool = ConnectionPool(self._conninfo(), min_size=1, max_size=self._max_size,
                                            timeout=self._timeout, kwargs={"autocommit": True}, configure=_utc,
                                            check=ConnectionPool.check_connection, name="ticketflow-api", open=True)
            return self._pool

    def connection(self) -> Iterator[psycopg.Connection]:
        """A FastAPI dependency: one pooled connection for the request, given back (rolled back if need be) after."""
        try:
            pool = self._opened()
            conn = pool.getconn()
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise DatabaseUnavailable(f"ticketing_db is unavailable: {exc}") from exc
        try:
            yield conn
        finally:
            pool.putconn(conn)


def airflow_conninfo(conn_id: str) -> str:
    """The libpq URL of an Airflow Postgres connection (the hook's URL names a SQLAlchemy driver)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", PostgresHook(postgres_conn_id=conn_id).get_uri())
