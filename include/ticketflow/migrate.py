"""Apply the numbered SQL files of `sql/migrations/` to the application database.

yoyo-migrations does the applying: each file in its own transaction, in
order, recorded in `_yoyo_migration`, under a lock so two migrators never
interleave. yoyo identifies a migration by its file name only, so this module
adds what it lacks: the SHA-256 of every applied file is recorded, and a run
refuses to start when an applied file no longer matches it.

    python -m ticketflow.migrate [DATABASE_URL]
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
from yoyo import get_backend, read_migrations

from ticketflow.settings import MIGRATIONS_DIR

CHECKSUM_TABLE = "_ticketflow_migration_checksum"

#: Applied migrations whose comments were reworded after they ran: the checksum they ran with, and the only
#: text accepted in its place (tests/integration/test_migrations.py shows that just a comment changed). The
#: record moves to the new text on the next migrate.
REWORDED_COMMENTS = {
    # The first line named a file outside the repository.
    "0001_core_schema": ("07df179e78deaabb042e91436f0eedb96c784630e1e44d2e11a9f0cebc2e32d7",
                         "ba210321c82d033f8255e41dc28d38272e485b03014f1caa47e1d8a31842df40"),
}


class EditedMigrationError(RuntimeError):
    """An applied migration file was changed after it ran."""


@dataclass(frozen=True)
class MigrationResult:
    applied: list[str]
    already_applied: list[str]


def _yoyo_url(database_url: str) -> str:
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in ("postgres", "postgresql", "postgresql+psycopg"):
        raise ValueError(f"expected a postgresql:// URL, got {scheme or database_url!r}")
    return f"postgresql+psycopg://{rest}"


def _checksum(migration) -> str:
    with open(migration.path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _recorded_checksums(conn: psycopg.Connection) -> dict[str, str]:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {CHECKSUM_TABLE} ("
        " migration_id text PRIMARY KEY, sha256 text NOT NULL,"
        " recorded_at timestamptz NOT NULL DEFAULT now())"
    )
    return dict(conn.execute(f"SELECT migration_id, sha256 FROM {CHECKSUM_TABLE}").fetchall())


def migrate(database_url: str, migrations_dir: Path = MIGRATIONS_DIR) -> MigrationResult:
    """Apply what is pending; refuse if an applied file was edited."""
    backend = get_backend(_yoyo_url(database_url))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock(), psycopg.connect(database_url, autocommit=True) as conn:
        recorded = _recorded_checksums(conn)
        applied_before = [m for m in migrations if backend.is_applied(m)]
        for m in applied_before:
            if m.id in recorded and (recorded[m.id], _checksum(m)) == REWORDED_COMMENTS.get(m.id):
                recorded[m.id] = _checksum(m)
                conn.execute(f"UPDATE {CHECKSUM_TABLE} SET sha256 = %s WHERE migration_id = %s", (recorded[m.id], m.id))
        edited = [
            m.id for m in applied_before if m.id in recorded and recorded[m.id] != _checksum(m)
        ]
        if edited:
            raise EditedMigrationError(
                "applied migrations were edited since they ran: "
                + ", ".join(edited)
                + ". Add a new numbered migration instead of changing an applied one."
            )
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
        for migration in migrations:
            if backend.is_applied(migration):
                conn.execute(
                    f"INSERT INTO {CHECKSUM_TABLE} (migration_id, sha256) VALUES (%s, %s)"
                    " ON CONFLICT (migration_id) DO NOTHING",
                    (migration.id, _checksum(migration)),
                )
    return MigrationResult(
        applied=[m.id for m in pending], already_applied=[m.id for m in applied_before]
    )


def main(argv: list[str]) -> int:
    from ticketflow.settings import database_url_from_env

    url = argv[0] if argv else database_url_from_env()
    if not url:
        print("usage: python -m ticketflow.migrate DATABASE_URL (or set TICKETFLOW_DATABASE_URL)")
        return 2
    try:
        result = migrate(url)
    except EditedMigrationError as exc:
        print(f"migrate: refused: {exc}", file=sys.stderr)
        return 1
    print(
        f"migrate: applied {len(result.applied)} "
        f"({', '.join(result.applied) or 'none'}); {len(result.already_applied)} already applied"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
