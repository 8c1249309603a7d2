"""Recurring ticket processing against a real PostgreSQL: exactly once, in every situation the seed got wrong."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from ticketflow import settings
from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.recurring import create_due_occurrences

UTC = UTC
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


def template(db, **fields):
    values = {"subject": "Check backups", "description": "Weekly checklist", "department": "IT",
              "category": "Ops", "sub_category": "Backups", "priority": "high", "requester_email": "ops@example.com",
              "is_recurring": True, "recurrence_interval": "daily", "next_occurrence": T0, **fields}
    columns = ", ".join(values)
    placeholders = ", ".join(f"%({k})s" for k in values)
    return db.execute(f"INSERT INTO tickets ({columns}) VALUES ({placeholders}) RETURNING id", values).fetchone()[0]


def run(conn, due, run_id="scheduled__r", batch_size=1000, default_timezone="UTC"):
    window = RunWindow(dag_id="recurring_tickets", run_id=run_id, due_at=due)
    with AuditedRun(conn, window) as audited:
        create_due_occurrences(audited, default_timezone, batch_size)
    return audited.outcome


def occurrences(db, template_id=None):
    rows = db.execute("SELECT recurring_parent_id, occurrence_at FROM tickets WHERE recurring_parent_id IS NOT NULL"
                      " ORDER BY 1, 2").fetchall()
    return [o for parent, o in rows if template_id in (None, parent)]


def pointer(db, template_id):
    return db.execute("SELECT next_occurrence FROM tickets WHERE id = %s", (template_id,)).fetchone()[0]


def as_the_job(db, statement, params):
    """A write only the job may make (its pointer), to set up what a lost or stale write of its own leaves."""
    with db.transaction():
        db.execute("SELECT set_config('ticketflow.recurring_engine', 'on', true)")
        db.execute(statement, params)


def test_a_due_template_gets_one_ticket_copied_from_it_and_its_pointer_moves(db):
    parent = template(db)
    outcome = run(db, T0 + timedelta(minutes=5))

    assert (outcome.processed, outcome.changed, outcome.skipped) == (1, 1, 0)
    child = db.execute(
        "SELECT subject, description, department, category, sub_category, priority, requester_email,"
        " is_recurring, is_task_allocated, recurring_parent_id, occurrence_at FROM tickets"
        " WHERE recurring_parent_id IS NOT NULL").fetchone()
    assert child == ("Check backups (2026-03-02)", "Weekly checklist", "IT", "Ops", "Backups", "high",
                     "ops@example.com", False, False, parent, T0)
    assert pointer(db, parent) == T0 + timedelta(days=1)
    assert run(db, T0 + timedelta(minutes=10), run_id="scheduled__r2").changed == 0


def test_nothing_is_created_before_it_is_due_and_lead_time_creates_early(db):
    plain = template(db, subject="plain")
    early = template(db, subject="early", recurrence_lead_time=timedelta(hours=2))
    run(db, T0 - timedelta(hours=1))
    assert occurrences(db) == [T0] and occurrences(db, early) == [T0] and occurrences(db, plain) == []
    assert pointer(db, early) == T0 + timedelta(days=1)


def test_rerunning_the_same_interval_is_a_no_op(db):
    parent = template(db)
    run(db, T0)
    as_the_job(db, "UPDATE tickets SET next_occurrence = %s WHERE id = %s", (T0, parent))  # the advance was lost
    again = run(db, T0, run_id="scheduled__r")
    assert again.changed == 0
    assert occurrences(db) == [T0]


def test_missed_occurrences_latest_only_creates_the_newest_and_records_the_rest(db):
    parent = template(db)
    outcome = run(db, T0 + timedelta(days=2, hours=1))
    assert occurrences(db) == [T0 + timedelta(days=2)]
    assert (outcome.changed, outcome.skipped) == (1, 2)
    skips = db.execute("SELECT occurrence_at, run_id FROM recurring_occurrence_skips WHERE template_id = %s"
                       " ORDER BY 1", (parent,)).fetchall()
    assert skips == [(T0, "scheduled__r"), (T0 + timedelta(days=1), "scheduled__r")]
    assert pointer(db, parent) == T0 + timedelta(days=3)


def test_missed_occurrences_create_all_creates_every_one(db):
    parent = template(db, missed_policy="create_all")
    assert run(db, T0 + timedelta(days=2, hours=1)).changed == 3
    assert occurrences(db, parent) == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]


def test_a_backfill_over_three_past_days_creates_exactly_the_missed_tickets(db):
    parent = template(db, missed_policy="create_all")
    ticks = [T0 - timedelta(minutes=5) + timedelta(minutes=5 * i) for i in range(3 * 24 * 12 + 1)]
    created_by = {}
    for tick in ticks:  # every five-minute interval of three days, oldest first
        created_by[tick] = run(db, tick, run_id=f"backfill__{tick.isoformat()}").changed
    assert occurrences(db, parent) == [T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    assert [tick for tick, created in created_by.items() if created] == [
        T0, T0 + timedelta(days=1), T0 + timedelta(days=2)]
    for tick in ticks[::37]:  # a second pass (reruns) changes nothing
        assert run(db, tick, run_id=f"backfill__{tick.isoformat()}").changed == 0


def test_a_failure_between_creating_and_advancing_leaves_no_trace(db):
    parent = template(db)
    db.execute("""
        CREATE FUNCTION fail_advance() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'simulated crash while advancing %', OLD.id; END $$;
        CREATE TRIGGER fail_advance BEFORE UPDATE OF next_occurrence ON tickets
            FOR EACH ROW EXECUTE FUNCTION fail_advance();
    """)
    with pytest.raises(psycopg.errors.RaiseException):
        run(db, T0 + timedelta(minutes=5))
    assert occurrences(db) == []
    assert pointer(db, parent) == T0
    status, error, created = db.execute("SELECT status, error_message, total_created FROM recurring_ticket_runs"
                                        ).fetchone()
    assert (status, created) == ("error", 0) and "simulated crash while advancing" in error

    db.execute("DROP TRIGGER fail_advance ON tickets; DROP FUNCTION fail_advance()")
    assert run(db, T0 + timedelta(minutes=5)).changed == 1
    assert db.execute("SELECT status FROM recurring_ticket_runs").fetchone()[0] == "success"


def test_two_runs_over_the_same_interval_in_parallel_create_each_occurrence_once(db, run_concurrently):
    db.execute("INSERT INTO tickets (subject, department, category, is_recurring, recurrence_interval,"
               " next_occurrence, missed_policy) SELECT 'T' || g, 'IT', 'Ops', true, 'daily', %s, 'create_all'"
               " FROM generate_series(1, 2000) g", (T0,))
    def one_run(conn, name):
        conn.execute("SET lock_timeout = '1s'")  # waiting for the other run's rows would fail the test
        return run(conn, T0 + timedelta(days=1), run_id=name, batch_size=100).changed

    results = run_concurrently(["run_0", "run_1"], one_run)
    assert sum(results.values()) == 4000
    assert db.execute("SELECT count(*), count(DISTINCT (recurring_parent_id, occurrence_at)) FROM tickets"
                      " WHERE recurring_parent_id IS NOT NULL").fetchone() == (4000, 4000)


def test_a_template_created_paused_starts_at_its_anchor_when_resumed(db):
    """Pausing replaced switching is_recurring off: a paused template gets nothing until it is resumed."""
    parent = template(db, paused_at=T0 - timedelta(days=1), next_occurrence=None, recurrence_start=T0)
    assert run(db, T0 + timedelta(minutes=5)).changed == 0
    db.execute("UPDATE tickets SET paused_at = NULL WHERE id = %s", (parent,))
    run(db, T0 + timedelta(minutes=10), run_id="r2")
    assert occurrences(db, parent) == [T0]


def test_a_template_cannot_be_switched_off_into_a_ticket_nor_be_given_a_task(db):
    """The probe of 2026-12-02: is_recurring = false made a live ticket of a template, and assignment gave it a
    task. is_recurring is now fixed at insert, and the database refuses a task for a template row."""
    parent = template(db)
    with pytest.raises(psycopg.errors.CheckViolation, match="is_recurring cannot change"):
        db.execute("UPDATE tickets SET is_recurring = false WHERE id = %s", (parent,))
    ticket = db.execute("INSERT INTO tickets (subject, department, category) VALUES ('t', 'IT', 'Ops')"
                        " RETURNING id").fetchone()[0]
    with pytest.raises(psycopg.errors.CheckViolation, match="is_recurring cannot change"):
        db.execute("UPDATE tickets SET is_recurring = true, recurrence_interval = 'daily',"
                   " recurrence_start = %s WHERE id = %s", (T0, ticket))
    workflow = db.execute("INSERT INTO workflows (name, department, category, is_published, status)"
                          " VALUES ('w', 'IT', 'Ops', true, 'deployed') RETURNING id").fetchone()[0]
    with pytest.raises(psycopg.errors.CheckViolation, match="is a recurring template"):
        db.execute("INSERT INTO tasks (ticket_id, workflow_id) VALUES (%s, %s)", (parent, workflow))
    task = db.execute("INSERT INTO tasks (ticket_id, workflow_id) VALUES (%s, %s) RETURNING task_id",
                      (ticket, workflow)).fetchone()[0]
    with pytest.raises(psycopg.errors.CheckViolation, match="is a recurring template"):
        db.execute("UPDATE tasks SET ticket_id = %s WHERE task_id = %s", (parent, task))


def test_the_pointer_is_the_jobs_and_reschedule_at_moves_the_series(db):
    """The seed's users rescheduled by editing next_occurrence, and the job guessed what they meant. That edit
    is refused now; reschedule_at says it: the next ticket is for the new instant, later ones follow from it."""
    parent = template(db)
    run(db, T0)
    tuesday_afternoon = T0 + timedelta(days=1, hours=5)
    with pytest.raises(psycopg.errors.CheckViolation, match="next_occurrence is the recurring job's pointer"):
        db.execute("UPDATE tickets SET next_occurrence = %s WHERE id = %s", (tuesday_afternoon, parent))
    db.execute("UPDATE tickets SET reschedule_at = %s WHERE id = %s", (tuesday_afternoon, parent))
    outcome = run(db, tuesday_afternoon + timedelta(minutes=5), run_id="scheduled__r2")
    assert occurrences(db, parent) == [T0, tuesday_afternoon]
    assert pointer(db, parent) == tuesday_afternoon + timedelta(days=1)
    assert db.execute("SELECT recurrence_start, reschedule_at FROM tickets WHERE id = %s",
                      (parent,)).fetchone() == (tuesday_afternoon, None)
    assert outcome.details["rescheduled"] == 1


MONDAY_9 = T0 + timedelta(days=7)  # the job's last ticket; its pointer is Tuesday 09:00Z


@pytest.mark.parametrize("edit, expected", [
    # the owner moves the anchor: the new series, from the pointer on
    ("recurrence_start = '2026-03-10 14:00+00'", [MONDAY_9, MONDAY_9 + timedelta(days=1, hours=5),
                                                  MONDAY_9 + timedelta(days=2, hours=5)]),
    # a new zone (as a tz database update would do): 04:00 local, now summer time, from the pointer on
    ("recurrence_timezone = 'America/Toronto'", [MONDAY_9, MONDAY_9 + timedelta(days=2, hours=-1),
                                                 MONDAY_9 + timedelta(days=3, hours=-1)]),
    # a new interval: Mondays, from the pointer on
    ("recurrence_interval = 'weekly'", [MONDAY_9, MONDAY_9 + timedelta(days=7)]),
])
def test_editing_another_schedule_column_keeps_what_the_owner_set(db, edit, expected):
    """Only a reschedule restarts a series; edits of the schedule apply from the job's pointer on and leave the
    anchor alone, even when they leave the pointer off the new schedule."""
    parent = template(db)
    run(db, MONDAY_9)
    anchor = db.execute(f"UPDATE tickets SET {edit} WHERE id = %s RETURNING recurrence_start", (parent,)).fetchone()[0]
    for day in range(8, 15):
        run(db, T0 + timedelta(days=day, hours=10), run_id=f"r{day}")
    assert occurrences(db, parent)[:len(expected)] == expected
    assert db.execute("SELECT recurrence_start FROM tickets WHERE id = %s", (parent,)).fetchone()[0] == anchor


def test_a_stale_save_writing_back_an_old_pointer_is_refused_and_changes_nothing(db):
    """A form read before the run saves the start its owner changed, and the pointer it had read: refused, so
    the old pointer cannot replay an occurrence; saving the start alone applies it from the job's pointer on."""
    parent = template(db)
    run(db, T0)
    with pytest.raises(psycopg.errors.CheckViolation, match="tickets_pointer_is_the_jobs|job's pointer"):
        db.execute("UPDATE tickets SET recurrence_start = %s, next_occurrence = %s WHERE id = %s",
                   (T0 + timedelta(hours=5), T0, parent))
    assert (db.execute("SELECT recurrence_start FROM tickets WHERE id = %s", (parent,)).fetchone()[0],
            pointer(db, parent)) == (T0, T0 + timedelta(days=1))
    db.execute("UPDATE tickets SET recurrence_start = %s WHERE id = %s", (T0 + timedelta(hours=5), parent))
    outcome = run(db, T0 + timedelta(hours=5, minutes=5), run_id="r2")
    run(db, T0 + timedelta(days=1, hours=5, minutes=5), run_id="r3")
    assert occurrences(db, parent) == [T0, T0 + timedelta(days=1, hours=5)]
    assert (outcome.changed, outcome.skipped) == (0, 0)


def test_a_template_created_with_its_own_first_ticket_time_starts_there(db):
    """At insert, a next_occurrence given is the series' first occurrence: its anchor."""
    parent = template(db, recurrence_start=T0, next_occurrence=T0 + timedelta(days=1, hours=5))
    run(db, T0 + timedelta(days=1, hours=6))
    assert occurrences(db, parent) == [T0 + timedelta(days=1, hours=5)]


def test_a_reschedule_written_while_paused_moves_the_series_when_resumed(db):
    parent = template(db)
    run(db, T0)
    db.execute("UPDATE tickets SET paused_at = %s WHERE id = %s", (T0, parent))
    db.execute("UPDATE tickets SET reschedule_at = %s WHERE id = %s", (T0 + timedelta(days=1, hours=5), parent))
    assert run(db, T0 + timedelta(days=1, hours=6), run_id="r2").changed == 0
    db.execute("UPDATE tickets SET paused_at = NULL WHERE id = %s", (parent,))
    run(db, T0 + timedelta(days=1, hours=6), run_id="r3")
    assert occurrences(db, parent) == [T0, T0 + timedelta(days=1, hours=5)]


def test_a_reschedule_decades_back_parks_its_template_says_why_and_a_new_one_fixes_it(db):
    parent = template(db)
    daily = template(db, subject="daily")
    run(db, T0)
    db.execute("UPDATE tickets SET reschedule_at = '1996-03-02 14:00+00' WHERE id = %s", (parent,))
    parked = run(db, T0 + timedelta(days=1), run_id="r2").details["invalid_templates"]
    assert parked == [{"template_id": parent, "reason": "more than 10000 occurrences due at once; set"
                       " recurrence_start to the series' real first occurrence"}]
    assert occurrences(db, daily) == [T0, T0 + timedelta(days=1)]
    db.execute("UPDATE tickets SET reschedule_at = %s WHERE id = %s", (T0 + timedelta(days=1, hours=5), parent))
    run(db, T0 + timedelta(days=1, hours=6), run_id="r3")
    assert occurrences(db, parent) == [T0, T0 + timedelta(days=1, hours=5)]


@pytest.mark.parametrize("years_back", [1000, 2000])
def test_a_reschedule_centuries_back_is_refused_by_the_database(db, years_back):
    parent = template(db)
    with pytest.raises(psycopg.errors.CheckViolation, match="tickets_reschedule_at_sane"):
        db.execute("UPDATE tickets SET reschedule_at = %s WHERE id = %s", (T0.replace(year=T0.year - years_back),
                                                                          parent))


def test_a_template_created_paused_with_its_own_first_ticket_time_starts_there_when_resumed(db):
    parent = template(db, paused_at=T0, recurrence_start=T0, next_occurrence=T0 + timedelta(days=1, hours=5))
    db.execute("UPDATE tickets SET paused_at = NULL WHERE id = %s", (parent,))
    run(db, T0 + timedelta(days=1, hours=6))
    assert occurrences(db, parent) == [T0 + timedelta(days=1, hours=5)]


def test_an_ended_rule_given_a_new_start_runs_again(db):
    parent = template(db, recurrence_interval=None, recurrence_rule="FREQ=WEEKLY;COUNT=2")
    run(db, T0 + timedelta(days=7))
    assert pointer(db, parent) is None
    db.execute("UPDATE tickets SET recurrence_start = %s WHERE id = %s", (T0 + timedelta(days=28), parent))
    run(db, T0 + timedelta(days=28, minutes=5), run_id="r2")
    assert occurrences(db, parent)[-1] == T0 + timedelta(days=28)


def test_skipped_occurrences_keep_the_series_anchor(db):
    """Skipping ahead (two months skipped, as the API records them) never shifts the series: the 31st stays."""
    anchor = datetime(2028, 1, 31, 14, tzinfo=UTC)
    monthly = template(db, recurrence_interval="monthly", next_occurrence=anchor)
    run(db, datetime(2028, 2, 29, 14, tzinfo=UTC), run_id="r1")  # latest_only: Feb 29 only
    for skipped in (datetime(2028, 3, 31, 14, tzinfo=UTC), datetime(2028, 4, 30, 14, tzinfo=UTC)):
        db.execute("INSERT INTO recurring_occurrence_skips (template_id, occurrence_at, kind, skipped_by, reason)"
                   " VALUES (%s, %s, 'skipped', 'ana', 'audit months')", (monthly, skipped))
    run(db, datetime(2028, 5, 31, 14, tzinfo=UTC), run_id="r3")
    assert [o.date().isoformat() for o in occurrences(db, monthly)] == ["2028-02-29", "2028-05-31"]
    assert db.execute("SELECT count(*) FROM recurring_occurrence_skips WHERE template_id = %s AND skipped_by"
                      " IS NULL", (monthly,)).fetchone()[0] == 1  # Jan 31 only: the skipped months are not missed
    assert db.execute("SELECT recurrence_start FROM tickets WHERE id = %s", (monthly,)).fetchone()[0] == anchor


def test_an_rrule_reschedule_moves_its_dtstart_and_so_its_time_of_day(db):
    """An RRULE's anchor is its DTSTART: rescheduled to Monday 14:00, it goes on Mondays at 14:00."""
    mondays = template(db, recurrence_interval=None, recurrence_rule="FREQ=WEEKLY;BYDAY=MO")
    run(db, T0)
    db.execute("UPDATE tickets SET reschedule_at = %s WHERE id = %s", (T0 + timedelta(days=7, hours=5), mondays))
    run(db, T0 + timedelta(days=7, hours=5, minutes=5), run_id="r2")
    assert occurrences(db, mondays) == [T0, T0 + timedelta(days=7, hours=5)]
    assert pointer(db, mondays) == T0 + timedelta(days=14, hours=5)


def test_the_jobs_own_pointer_moves_keep_the_anchor(db):
    """Run by run, the job's advances must not restart the series: the 31st stays the 31st, COUNT counts once."""
    anchor = datetime(2028, 1, 31, 14, tzinfo=UTC)
    monthly = template(db, recurrence_interval="monthly", next_occurrence=anchor)
    counted = template(db, recurrence_interval=None, recurrence_rule="FREQ=DAILY;COUNT=2", next_occurrence=anchor)
    for number, due in enumerate([anchor, anchor + timedelta(days=1), anchor + timedelta(days=2),
                                  datetime(2028, 2, 29, 14, tzinfo=UTC), datetime(2028, 3, 31, 14, tzinfo=UTC)]):
        run(db, due, run_id=f"scheduled__{number}")
    assert [o.day for o in occurrences(db, monthly)] == [31, 29, 31]
    assert occurrences(db, counted) == [anchor, anchor + timedelta(days=1)]
    assert db.execute("SELECT recurrence_start FROM tickets WHERE id = %s", (monthly,)).fetchone()[0] == anchor


def test_templates_that_are_archived_deactivated_or_past_their_end_are_left_alone(db):
    archived = template(db, archived=True)
    inactive = template(db, is_recurring=False)
    ended = template(db, recurrence_end=T0 - timedelta(days=1))
    ending = template(db, recurrence_end=T0 + timedelta(days=1))
    run(db, T0 + timedelta(days=5))
    assert occurrences(db, archived) == occurrences(db, inactive) == occurrences(db, ended) == []
    assert occurrences(db, ending) == [T0 + timedelta(days=1)]  # latest_only, within its end
    assert pointer(db, ended) == T0


def test_month_end_and_time_zone_of_the_template(db):
    monthly = template(db, recurrence_interval="monthly", next_occurrence=datetime(2028, 1, 31, 14, tzinfo=UTC),
                       recurrence_timezone="America/Toronto", missed_policy="create_all")
    run(db, datetime(2028, 4, 1, tzinfo=UTC))
    assert [o.isoformat() for o in occurrences(db, monthly)] == [
        "2028-01-31T14:00:00+00:00", "2028-02-29T14:00:00+00:00", "2028-03-31T13:00:00+00:00"]
    subjects = [r[0] for r in db.execute("SELECT subject FROM tickets WHERE recurring_parent_id = %s"
                                         " ORDER BY occurrence_at", (monthly,)).fetchall()]
    assert subjects[-1] == "Check backups (2028-03-31)"
    assert pointer(db, monthly) == datetime(2028, 4, 30, 13, tzinfo=UTC)


def test_the_default_time_zone_applies_when_the_template_names_none(db):
    parent = template(db, next_occurrence=datetime(2026, 3, 6, 14, tzinfo=UTC), missed_policy="create_all")
    run(db, datetime(2026, 3, 9, 14, tzinfo=UTC), default_timezone="America/Toronto")
    assert [o.hour for o in occurrences(db, parent)] == [14, 14, 13, 13]


def test_rrule_templates_are_scheduled_by_their_rule(db):
    parent = template(db, recurrence_interval=None, recurrence_rule="FREQ=WEEKLY;BYDAY=MO,WE,FR",
                      missed_policy="create_all")
    run(db, T0 + timedelta(days=7))
    assert [o.strftime("%a %d") for o in occurrences(db, parent)] == [
        "Mon 02", "Wed 04", "Fri 06", "Mon 09"]
    assert pointer(db, parent) == T0 + timedelta(days=9)


def test_an_infinite_end_means_no_end(db):
    endless = [template(db, recurrence_interval=interval, recurrence_rule=rule, recurrence_end=end)
               for interval, rule in (("daily", None), (None, "FREQ=DAILY")) for end in ("infinity", "9500-01-01")]
    run(db, T0 + timedelta(minutes=5))
    assert [occurrences(db, parent) for parent in endless] == [[T0]] * 4
    assert [pointer(db, parent) for parent in endless] == [T0 + timedelta(days=1)] * 4


def test_a_rule_wins_over_interval_and_every(db):
    parent = template(db, recurrence_interval="daily", recurrence_rule="FREQ=MONTHLY", missed_policy="create_all")
    run(db, T0 + timedelta(days=10))
    assert occurrences(db, parent) == [T0]


def test_a_bad_rule_is_parked_with_its_reason_and_never_stops_the_others(db):
    bad = template(db, recurrence_interval=None, recurrence_rule="FREQ=WEEKLY;BYDAY=FUNDAY")
    good_rule = template(db, recurrence_interval=None, recurrence_rule="FREQ=DAILY")
    good_interval = template(db)
    outcome = run(db, T0 + timedelta(minutes=5))

    assert occurrences(db, good_rule) == occurrences(db, good_interval) == [T0]
    assert occurrences(db, bad) == []
    [invalid] = outcome.details["invalid_templates"]
    assert invalid["template_id"] == bad and "unparseable RRULE" in invalid["reason"]
    error, next_at = db.execute("SELECT recurrence_error, next_occurrence FROM tickets WHERE id = %s",
                                (bad,)).fetchone()
    assert "unparseable RRULE" in error and next_at == T0
    audit = db.execute("SELECT status, details FROM recurring_ticket_runs").fetchone()
    assert audit[0] == "success" and audit[1]["invalid_templates"] == [invalid]

    # Parked: later runs do not retry it; fixing the rule clears the error and it is scheduled again.
    assert run(db, T0 + timedelta(minutes=10), run_id="r2").details["invalid_templates"] == []
    db.execute("UPDATE tickets SET recurrence_rule = 'FREQ=WEEKLY;BYDAY=MO' WHERE id = %s", (bad,))
    assert db.execute("SELECT recurrence_error FROM tickets WHERE id = %s", (bad,)).fetchone()[0] is None
    run(db, T0 + timedelta(minutes=15), run_id="r3")
    assert occurrences(db, bad) == [T0]


@pytest.mark.parametrize("rule", [None, "FREQ=DAILY"])
def test_a_start_decades_off_is_parked_instead_of_flooding_the_desk_with_tickets(db, caplog, rule):
    typo = template(db, subject="typo", next_occurrence=T0.replace(year=1926), missed_policy="create_all",
                    recurrence_rule=rule)
    fine = template(db, subject="fine", missed_policy="create_all", recurrence_rule=rule)
    outcome = run(db, T0 + timedelta(minutes=5))

    assert occurrences(db, typo) == [] and occurrences(db, fine) == [T0]
    reason = "more than 10000 occurrences due at once; set recurrence_start to the series' real first occurrence"
    assert outcome.details["invalid_templates"] == [{"template_id": typo, "reason": reason}]
    assert db.execute("SELECT recurrence_error, next_occurrence FROM tickets WHERE id = %s", (typo,)).fetchone() == (
        reason, T0.replace(year=1926))
    assert db.execute("SELECT count(*) FROM recurring_occurrence_skips").fetchone()[0] == 0
    assert f"recurring ticket template {typo} skipped: {reason}" in caplog.text

    db.execute("UPDATE tickets SET recurrence_start = %s WHERE id = %s", (T0, typo))  # as the reason says
    again = run(db, T0 + timedelta(minutes=10), run_id="r2")
    assert occurrences(db, typo) == [T0] and again.details["invalid_templates"] == []


def test_a_bad_default_time_zone_fails_the_run_before_anything_is_written(db):
    template(db)
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Land'"):
        run(db, T0, default_timezone="Nowhere/Land")
    assert occurrences(db) == []
    assert db.execute("SELECT status FROM recurring_ticket_runs").fetchone()[0] == "error"


@pytest.mark.parametrize("fields, constraint", [
    ({"recurrence_every": 0}, "tickets_recurrence_every_check"),
    ({"recurrence_interval": "hourly"}, "tickets_recurrence_interval_check"),
    ({"recurrence_every": 1001}, "tickets_recurrence_every_check"),
    ({"recurrence_start": "20000-01-01 00:00+00", "next_occurrence": None}, "tickets_recurrence_start_sane"),
    ({"recurrence_interval": None}, "tickets_recurring_has_schedule"),
    ({"next_occurrence": None}, "tickets_recurring_has_anchor"),
    ({"missed_policy": "some"}, "tickets_missed_policy_check"),
])
def test_bad_templates_are_refused_by_the_database(db, fields, constraint):
    with pytest.raises(psycopg.errors.CheckViolation, match=constraint):
        template(db, **fields)


def test_an_unknown_time_zone_name_is_refused_by_the_database(db):
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="tickets_recurrence_timezone_known"):
        template(db, recurrence_timezone="Europe/Atlantis")


def test_every_allowed_zone_reads_the_same_in_postgresql_and_python(db):
    """Interval schedules convert in SQL, RRULEs in Python: a zone name that PostgreSQL also knows as an
    abbreviation (and so reads as a fixed offset) must still read as the zone, or be refused."""
    instants = [datetime(2026, month, 15, 12, tzinfo=UTC) for month in (1, 7)]
    rows = db.execute("SELECT z.name, i, i AT TIME ZONE z.name FROM time_zones z, unnest(%s::timestamptz[]) AS i"
                      " WHERE z.name IN (SELECT abbrev FROM pg_timezone_abbrevs)", (instants,)).fetchall()
    differ = sorted({name for name, instant, wall in rows
                     if instant.astimezone(ZoneInfo(name)).replace(tzinfo=None) != wall})
    assert {"UTC", "EST", "GMT"} <= {name for name, _, _ in rows} and differ == []
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="tickets_recurrence_timezone_known"):
        template(db, recurrence_timezone="CET")


def test_a_default_zone_postgresql_would_read_without_summer_time_is_refused(monkeypatch):
    monkeypatch.setenv("TICKETFLOW_TIMEZONE", "CET")
    with pytest.raises(ValueError, match="'CET' is read by PostgreSQL as a fixed offset.*use Europe/Brussels"):
        settings.default_timezone()


def test_the_audit_row_and_its_view_carry_the_runs_totals(db):
    for i in range(3):
        template(db, subject=f"t{i}", missed_policy="create_all")
    run(db, T0 + timedelta(days=1), run_id="scheduled__audit", batch_size=2)
    row = db.execute("SELECT run_id, status, total_processed, total_created, total_skipped, duration_seconds,"
                     " error_message, finished_at >= started_at FROM recurring_ticket_runs").fetchone()
    assert row[:5] == ("scheduled__audit", "success", 3, 6, 0)
    assert row[5] >= 0 and row[6] is None and row[7] is True


@pytest.mark.parametrize("schedule", [{}, {"recurrence_interval": None, "recurrence_rule": "FREQ=DAILY"}])
def test_latest_only_never_skips_occurrences_that_lead_time_creates_early(db, schedule):
    parent = template(db, recurrence_lead_time=timedelta(hours=36), **schedule)
    outcome = run(db, T0 - timedelta(hours=1))
    assert occurrences(db, parent) == [T0, T0 + timedelta(days=1)]
    assert outcome.skipped == 0
    # After an outage: T0+2d and T0+3d were missed (only the newest is created), T0+4d is early.
    after_outage = run(db, T0 + timedelta(days=3, hours=1), run_id="after-outage")
    day = timedelta(days=1)
    assert occurrences(db, parent) == [T0, T0 + day, T0 + 3 * day, T0 + 4 * day]
    assert after_outage.skipped == 1
