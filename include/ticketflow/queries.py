"""The set-based SQL the DAGs run lives in `sql/queries/`; this loads it by name."""

from __future__ import annotations

from functools import cache

from ticketflow.settings import QUERIES_DIR


class UnknownQueryError(LookupError):
    pass


@cache
def load(name: str) -> str:
    """Text of `sql/queries/<name>.sql`, read once per process."""
    path = (QUERIES_DIR / f"{name}.sql").resolve()
    if QUERIES_DIR.resolve() not in path.parents or not path.is_file():
        raise UnknownQueryError(f"no query named {name!r} under {QUERIES_DIR}")
    return path.read_text(encoding="utf-8")
