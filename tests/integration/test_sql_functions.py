"""sql/functions/ holds the current definitions of the recurring functions, triggers and views: readable in one
place, and held here to be exactly what the migrations made."""

import re

import psycopg
import pytest

from ticketflow.settings import SQL_DIR

FUNCTION_FILES = sorted((SQL_DIR / "functions").glob("*.sql"))

_DEFINITIONS = """
SELECT 'function ' || p.proname, pg_get_functiondef(p.oid) FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace AND p.proname = ANY (%(names)s)
UNION ALL
SELECT 'trigger ' || t.tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t WHERE t.tgname = ANY (%(names)s)
UNION ALL
SELECT 'view ' || c.relname, pg_get_viewdef(c.oid) FROM pg_class c
WHERE c.relkind = 'v' AND c.relnamespace = 'public'::regnamespace AND c.relname = ANY (%(names)s)
"""


def _defined_names(text: str) -> list[str]:
    return re.findall(r"^CREATE OR REPLACE (?:FUNCTION|TRIGGER|VIEW) (\w+)", text, re.MULTILINE)


@pytest.mark.parametrize("path", FUNCTION_FILES, ids=[p.name for p in FUNCTION_FILES])
def test_the_file_is_what_the_migrations_made(db, path):
    """Applying the file to a migrated database changes no definition and creates nothing new."""
    text = path.read_text(encoding="utf-8")
    names = _defined_names(text)
    assert names, "the file defines something"
    with pytest.raises(psycopg.errors.QueryCanceled), db.transaction():  # applied, compared, rolled back
        before = dict(db.execute(_DEFINITIONS, {"names": names}).fetchall())
        assert {kind.split(" ", 1)[1] for kind in before} == set(names), "every object exists before the file"
        db.execute(text)
        after = dict(db.execute(_DEFINITIONS, {"names": names}).fetchall())
        assert after == before
        raise psycopg.errors.QueryCanceled("roll back")


def test_the_recurring_files_cover_every_recurring_function_and_view(db):
    """A new recurring function or view must be added to the readable file too."""
    names = set(_defined_names((SQL_DIR / "functions" / "recurring_tickets.sql").read_text(encoding="utf-8")))
    in_database = {row[0] for row in db.execute(
        "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND (proname ~ 'recurr|interval'"
        " OR proname IN ('ticketflow_local_to_instant', 'ticketflow_pointer_is_the_jobs',"
        " 'ticketflow_no_task_for_templates'))"
        " UNION SELECT relname FROM pg_class WHERE relkind = 'v' AND relname ~ 'recurring'")}
    assert in_database <= names
