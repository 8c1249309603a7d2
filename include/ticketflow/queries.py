"""The set-based SQL the DAGs run lives in `sql/queries/`; this loads it by name."""

from __future__ import annotations

import logging
from functools import cache

import psycopg

from ticketflow.settings import QUERIES_DIR

log = logging.getLogger(__name__)


class UnknownQueryError(LookupError):
    pass


@cache
def load(name: str) -> str:
    """Text of `sql/queries/<name>.sql`, read once per process."""
    path = (QUERIES_DIR / f"{name}.sql").resolve()
    if QUERIES_DIR.resolve() not in path.parents or not path.is_file():
        raise UnknownQueryError(f"no query named {name!r} under {QUERIES_DIR}")
    return path.read_text(encoding="utf-8")


def changed_ids(conn: psycopg.Connection, name: str, params: dict, change: str) -> list[int]:
    """Run a set-based `UPDATE ... RETURNING id` by name; each changed row is named in the task log, as the seeds
    did."""
    ids = sorted(row[0] for row in conn.execute(load(name), params))
    for row_id in ids:
        log.info(change, row_id)
    return ids
