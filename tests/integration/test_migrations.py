"""Schema migrations against a real PostgreSQL: fresh apply, rerun, edited file refused."""

import hashlib
import shutil
from contextlib import closing
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ticketflow.migrate import CHECKSUM_TABLE, REWORDED_COMMENTS, EditedMigrationError, migrate
from ticketflow.settings import MIGRATIONS_DIR

SHARED_TABLES = {
    ("public", "tickets"), ("public", "recurring_ticket_runs"), ("public", "workflows"), ("public", "steps"),
    ("public", "tasks"), ("meta", "daemon_action_log"), ("public", "customers"), ("public", "reservations"),
    ("public", "events"), ("public", "automation_runs"),
}


def _tables(url):
    with closing(psycopg.connect(url)) as conn:
        return set(conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema IN ('public', 'meta')").fetchall())


def test_fresh_database_gets_every_shared_table_and_a_rerun_changes_nothing(database_factory):
    url = database_factory()
    first = migrate(url)
    assert first.applied == sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql"))
    assert SHARED_TABLES <= _tables(url)

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


#: The first line 0001 ran with; only that comment line was reworded since.
FIRST_LINE_OF_0001_AS_RUN = "-- Core schema: the tables CONTRACT.md names, plus the audit of automation runs"


def test_a_migration_reworded_only_in_a_comment_is_accepted_and_its_record_moves_to_the_new_text(database_factory):
    current = (MIGRATIONS_DIR / "0001_core_schema.sql").read_bytes()
    as_run = FIRST_LINE_OF_0001_AS_RUN.encode() + current[current.index(b"\n"):]
    ran_with, reworded = REWORDED_COMMENTS["0001_core_schema"]
    assert hashlib.sha256(as_run).hexdigest() == ran_with and hashlib.sha256(current).hexdigest() == reworded
    assert current.splitlines()[0].startswith(b"--") and current.splitlines()[1:] == as_run.splitlines()[1:]

    url = database_factory()
    migrate(url)
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        conn.execute(f"UPDATE {CHECKSUM_TABLE} SET sha256 = %s WHERE migration_id = '0001_core_schema'",
                     (ran_with,))
        assert migrate(url).applied == []
        recorded = conn.execute(f"SELECT sha256 FROM {CHECKSUM_TABLE} WHERE migration_id = '0001_core_schema'"
                                ).fetchone()[0]
    assert recorded == hashlib.sha256(current).hexdigest()


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


def test_event_reminders_queued_before_0009_keep_their_once_per_start_guarantee(database_factory, tmp_path):
    url = _migrated_before(database_factory, tmp_path, "0009")
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        conn.execute("INSERT INTO email_outbox (dedup_key, template, recipient, context, status, sent_at) VALUES"
                     " ('event:7:reminder:3', 'event_reminder', 'ana@example.com',"
                     " '{\"event_id\": 7, \"start_time\": \"2026-06-10T10:00:00-04:00\"}', 'sent', now()),"
                     " ('reservation:7:confirmed', 'reservation_confirmed', 'ana@example.com', '{}', 'queued', NULL)")
        migrate(url)
        keys = [row[0] for row in conn.execute("SELECT dedup_key FROM email_outbox ORDER BY id")]
    assert keys == ["event:7:reminder:3:20260610T140000Z", "reservation:7:confirmed"]


def test_templates_in_zones_postgresql_read_without_summer_time_keep_their_local_times(database_factory, tmp_path):
    """A CET template upgraded in summer: its pointer (computed as UTC+1) keeps its wall time in Europe/Brussels,
    so the series goes on at 10:00 local (08:00Z in summer), no day lost."""
    from ticketflow.audit import AuditedRun, RunWindow
    from ticketflow.recurring import create_due_occurrences

    def run(conn, due):
        with AuditedRun(conn, RunWindow("recurring_tickets", f"r{due:%m%d}", due)) as audited:
            create_due_occurrences(audited, "UTC")

    url = _migrated_before(database_factory, tmp_path, "0011")
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        anchor = datetime(2026, 1, 5, 9, tzinfo=UTC)  # 10:00 local, as both readings agree in winter
        ids = [conn.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                            " recurrence_rule, recurrence_timezone, recurrence_start) VALUES"
                            " (%s, 'IT', 'Ops', true, 'daily', %s, %s, %s) RETURNING id",
                            (zone, rule, zone, anchor)).fetchone()[0]
               for zone, rule in (("CET", None), ("CET", "FREQ=DAILY"), ("WET", None), ("UTC", None))]
        summer = conn.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
                              " recurrence_timezone, recurrence_start) VALUES ('summer', 'IT', 'Ops', true, 'daily',"
                              " 'CET', '2026-06-01 09:00+02') RETURNING id").fetchone()[0]
        # What the job of that time left on 1 July: each one's ticket and its pointer a day on. It read CET and
        # WET as fixed offsets in SQL (intervals: 10:00 CET = 09:00Z), and with summer time in Python (the RRULE).
        left = {ids[0]: datetime(2026, 7, 1, 9, tzinfo=UTC), ids[1]: datetime(2026, 7, 1, 8, tzinfo=UTC),
                ids[2]: datetime(2026, 7, 1, 9, tzinfo=UTC), ids[3]: datetime(2026, 7, 1, 9, tzinfo=UTC),
                summer: datetime(2026, 7, 1, 7, tzinfo=UTC)}
        for parent, occurrence in left.items():
            conn.execute("INSERT INTO tickets (subject, department, category, recurring_parent_id, occurrence_at)"
                         " VALUES ('copy', 'IT', 'Ops', %s, %s)", (parent, occurrence))
            conn.execute("UPDATE tickets SET next_occurrence = %s WHERE id = %s",
                         (occurrence + timedelta(days=1), parent))
        migrate(url)
        for day in (2, 3):
            run(conn, datetime(2026, 7, day, 9, 5, tzinfo=UTC))
        zones = [row[0] for row in conn.execute("SELECT recurrence_timezone FROM tickets WHERE id = ANY(%s)"
                                                " ORDER BY id", (ids,))]
        created, by_rule, summer_created = (
            [o for (o,) in conn.execute("SELECT occurrence_at FROM tickets WHERE recurring_parent_id = %s"
                                        " ORDER BY occurrence_at", (parent,))]
            for parent in (ids[0], ids[1], summer))
        refused = conn.execute("SELECT count(*) FROM time_zones WHERE name IN ('CET', 'EET', 'MET', 'WET')").fetchone()
    assert zones == ["Europe/Brussels", "Europe/Brussels", "Europe/Lisbon", "UTC"] and refused == (0,)
    assert [o.isoformat() for o in created] == [
        "2026-07-01T09:00:00+00:00", "2026-07-02T08:00:00+00:00", "2026-07-03T08:00:00+00:00"]
    assert [o.isoformat() for o in by_rule] == [  # Python always read CET with summer time: nothing changes
        "2026-07-01T08:00:00+00:00", "2026-07-02T08:00:00+00:00", "2026-07-03T08:00:00+00:00"]
    assert [o.isoformat() for o in summer_created] == [  # anchored at 09:00 summer time: it stays there
        "2026-07-01T07:00:00+00:00", "2026-07-02T07:00:00+00:00", "2026-07-03T07:00:00+00:00"]


def test_pointers_set_by_hand_before_0018_are_read_once_as_the_job_read_them(database_factory, tmp_path):
    """0018 ends the job's guessing. A pointer set by hand that the job had not read yet must still mean what it
    meant: off the schedule, the series restarts there; written back over a handled occurrence, nothing; on the
    schedule, a skip ahead. So every series stays where it was."""
    from ticketflow.audit import AuditedRun, RunWindow
    from ticketflow.recurring import create_due_occurrences

    monday = datetime(2026, 3, 2, 9, tzinfo=UTC)
    day = timedelta(days=1)

    def run(conn, due):
        with AuditedRun(conn, RunWindow("recurring_tickets", f"r{due:%d%H}", due)) as audited:
            create_due_occurrences(audited, "UTC")

    url = _migrated_before(database_factory, tmp_path, "0018")
    with closing(psycopg.connect(url, autocommit=True)) as conn:
        hand_set = {"job's": monday + day, "off the schedule": monday + day + timedelta(hours=5),
                    "written back": monday, "skip ahead": monday + 3 * day}
        ids = {}
        for name, pointer in hand_set.items():
            ids[name] = conn.execute("INSERT INTO tickets (subject, department, category, is_recurring,"
                                     " recurrence_interval, recurrence_timezone, recurrence_start) VALUES"
                                     " (%s, 'IT', 'Ops', true, 'daily', 'UTC', %s) RETURNING id",
                                     (name, monday)).fetchone()[0]
            # what the job left (Monday's ticket, its pointer on Tuesday), then the hand edit
            conn.execute("INSERT INTO tickets (subject, department, category, recurring_parent_id, occurrence_at)"
                         " VALUES ('copy', 'IT', 'Ops', %s, %s)", (ids[name], monday))
            conn.execute("UPDATE tickets SET next_occurrence = %s, job_next_occurrence = %s WHERE id = %s",
                         (monday + day, monday + day, ids[name]))
            conn.execute("UPDATE tickets SET next_occurrence = %s WHERE id = %s", (pointer, ids[name]))
        migrate(url)
        for due in (monday + day + timedelta(hours=6), monday + 3 * day + timedelta(hours=6)):
            run(conn, due)
        created = {name: [o for (o,) in conn.execute("SELECT occurrence_at FROM tickets WHERE recurring_parent_id"
                                                     " = %s ORDER BY occurrence_at", (template,))]
                   for name, template in ids.items()}
        starts = dict(conn.execute("SELECT subject, recurrence_start FROM tickets WHERE is_recurring").fetchall())
    tuesday_14 = monday + day + timedelta(hours=5)
    assert created == {"job's": [monday, monday + day, monday + 3 * day],
                       "off the schedule": [monday, tuesday_14, tuesday_14 + 2 * day],
                       "written back": [monday, monday + day, monday + 3 * day],
                       "skip ahead": [monday, monday + 3 * day]}
    assert starts == {"job's": monday, "off the schedule": tuesday_14, "written back": monday,
                      "skip ahead": monday}
