"""The local stack's embedded PostgreSQL: passwords on every connection, and an application database of its own."""

from contextlib import closing

import psycopg
import pytest
from psycopg import sql

from ticketflow.migrate import migrate

OWNER = "ticketflow_hand_over_test"


def test_a_database_the_superuser_made_is_handed_to_its_own_login_with_everything_in_it(embedded_postgres):
    """make run used to make the application database as the superuser: on the next start it gets an owner."""
    name = "ticketflow_hand_over_test"
    with closing(psycopg.connect(embedded_postgres.url(), autocommit=True)) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(OWNER)))
    before = embedded_postgres.ensure_database(name)  # as the superuser, as before
    migrate(before)

    url = embedded_postgres.ensure_database(name, owner=OWNER)

    assert url.startswith(f"postgresql://{OWNER}:")
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
        left = conn.execute(
            "SELECT 'schema ' || nspname FROM pg_namespace"
            " WHERE pg_get_userbyid(nspowner) NOT IN (%(owner)s, 'pg_database_owner')"
            "   AND nspname IN ('public', 'meta')"
            " UNION ALL SELECT 'relation ' || c.oid::regclass FROM pg_class c JOIN pg_namespace n"
            "   ON n.oid = c.relnamespace WHERE n.nspname IN ('public', 'meta')"
            "   AND pg_get_userbyid(c.relowner) <> %(owner)s AND c.relkind <> 'i'"
            " UNION ALL SELECT 'routine ' || p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n"
            "   ON n.oid = p.pronamespace WHERE n.nspname IN ('public', 'meta')"
            "   AND pg_get_userbyid(p.proowner) <> %(owner)s", {"owner": OWNER}).fetchall()
        assert left == []
        ticket = conn.execute("INSERT INTO tickets (subject, department, category) VALUES ('Printer', 'IT', 'Hw')"
                              " RETURNING id").fetchone()[0]
        assert ticket >= 1
    assert migrate(url).applied == []  # the owner can migrate it from now on


def test_every_connection_needs_the_password(embedded_postgres):
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://postgres@127.0.0.1:{embedded_postgres.port}/postgres", connect_timeout=5)
    assert embedded_postgres.passwords_file.stat().st_mode & 0o077 == 0
