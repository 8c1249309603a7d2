"""Schema migrations against a real PostgreSQL: fresh apply, rerun, edited file refused."""

import shutil
from contextlib import closing

import psycopg
import pytest

from ticketflow.migrate import EditedMigrationError, migrate
from ticketflow.settings import MIGRATIONS_DIR

CONTRACT_TABLES = {
    ("public", "tickets"), ("public", "recurring_ticket_runs"), ("public", "workflows"), ("public", "steps"),
    ("public", "tasks"), ("meta", "daemon_action_log"), ("public", "customers"), ("public", "reservations"),
    ("public", "events"), ("public", "automation_runs"),
}


def _tables(url):
    with closing(psycopg.connect(url)) as conn:
        return set(conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema IN ('public', 'meta')").fetchall())


def test_fresh_database_gets_every_contract_table_and_a_rerun_changes_nothing(database_factory):
    url = database_factory()
    first = migrate(url)
    assert first.applied == sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
    assert CONTRACT_TABLES <= _tables(url)

    second = migrate(url)
    assert second.applied == []
    assert second.already_applied == first.applied


def test_an_edited_applied_migration_is_refused_and_nothing_runs(database_factory, tmp_path):
    url = database_factory()
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    migrate(url, migrations)

    edited = sorted(migrations.glob("*.sql"))[0]
    edited.write_text(edited.read_text() + "\nCREATE TABLE sneaky (id int);\n")
    (migrations / "9999_later.sql").write_text("CREATE TABLE later_table (id int);\n")

    with pytest.raises(EditedMigrationError, match=edited.stem):
        migrate(url, migrations)
    tables = {name for _, name in _tables(url)}
    assert "sneaky" not in tables and "later_table" not in tables


def test_a_failing_migration_leaves_no_partial_schema(database_factory, tmp_path):
    url = database_factory()
    migrations = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, migrations)
    (migrations / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_function();\n")

    with pytest.raises(psycopg.Error):
        migrate(url, migrations)
    assert "half_done" not in {name for _, name in _tables(url)}
    (migrations / "9999_broken.sql").write_text("CREATE TABLE half_done (id int);\n")
    assert migrate(url, migrations).applied == ["9999_broken"]


def _migrated_before(database_factory, tmp_path, migration):
    """A database migrated up to (not including) `migration`, as one deployed before it."""
    url = database_factory()
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        if path.stem < migration:
            shutil.copy(path, migrations)
    migrate(url, migrations)
    return url


def test_event_reminders_queued_before_0010_keep_their_once_per_start_guarantee(database_factory, tmp_path):
    url = _migrated_before(database_factory, tmp_path, "0010")
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        conn.execute("INSERT INTO email_outbox (dedup_key, template, recipient, context, status, sent_at) VALUES"
                     " ('event:7:reminder:3', 'event_reminder', 'ana@example.com',"
                     " '{\"event_id\": 7, \"start_time\": \"2026-06-10T10:00:00-04:00\"}', 'sent', now()),"
                     " ('reservation:7:confirmed', 'reservation_confirmed', 'ana@example.com', '{}', 'queued', NULL)")
        migrate(url)
        keys = [row[0] for row in conn.execute("SELECT dedup_key FROM email_outbox ORDER BY id")]
    assert keys == ["event:7:reminder:3:20260610T140000Z", "reservation:7:confirmed"]


def test_templates_in_zones_postgresql_read_without_summer_time_move_to_the_zone_tzdata_links(database_factory,
                                                                                             tmp_path):
    url = _migrated_before(database_factory, tmp_path, "0011")
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        for name in ("CET", "WET", "UTC"):
            conn.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                         " recurrence_timezone, next_occurrence) VALUES (%s, 'IT', 'Ops', true, 'daily', %s, now())",
                         (name, name))
        migrate(url)
        zones = conn.execute("SELECT subject, recurrence_timezone FROM tickets ORDER BY id").fetchall()
        refused = conn.execute("SELECT count(*) FROM time_zones WHERE name IN ('CET', 'EET', 'MET', 'WET')").fetchone()
    assert zones == [("CET", "Europe/Brussels"), ("WET", "Europe/Lisbon"), ("UTC", "UTC")] and refused == (0,)
