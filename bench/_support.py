"""What the benchmarks share: a scratch, migrated database on the embedded (or the configured) server."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "include"), str(Path(__file__).resolve().parents[1])]

from devstack import free_port  # noqa: E402
from devstack.postgres import EmbeddedPostgres  # noqa: E402
from ticketflow.migrate import migrate  # noqa: E402
from ticketflow.settings import PROJECT_ROOT  # noqa: E402


@contextmanager
def scratch_database(durable: bool = False) -> Iterator[str]:
    """A migrated database that exists for the benchmark only (`durable`: PostgreSQL's default fsync)."""
    server = None
    base = os.environ.get("TICKETFLOW_DATABASE_URL")
    if not base:
        server = EmbeddedPostgres(PROJECT_ROOT / ".local" / ("bench-pg-durable" if durable else "bench-pg"),
                                  free_port(), durable=durable)
        server.start()
        base = server.url()
    name = f"ticketflow_bench_{uuid.uuid4().hex[:8]}"
    with closing(psycopg.connect(base, autocommit=True)) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(url)
        yield url
    finally:
        with closing(psycopg.connect(base, autocommit=True)) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if server:
            server.stop()
