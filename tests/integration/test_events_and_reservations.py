"""Starting, reminding and archiving events; completing reservations; the rules the database enforces."""

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from ticketflow.audit import RunWindow, run_audited
from ticketflow.events import advance_events, archive_completed_events
from ticketflow.reservations import complete_overdue_reservations

UTC = UTC


def _window(due, dag_id="event_lifecycle", run_id="r"):
    return RunWindow(dag_id=dag_id, run_id=run_id, due_at=due)


def _event(db, title, status, start, end=None):
    return db.execute("INSERT INTO events (title, start_date, end_date, status) VALUES (%s, %s, %s, %s) RETURNING id",
                      (title, start, end, status)).fetchone()[0]


def _customer(db, username, first="", last=""):
    return db.execute("INSERT INTO customers (username, first_name, last_name, email) VALUES (%s, %s, %s, %s)"
                      " RETURNING id", (username, first, last, f"{username}@example.com")).fetchone()[0]


def _reminders(db):
    return db.execute("SELECT recipient, context->>'title' FROM email_outbox WHERE template = 'event_reminder'"
                      " ORDER BY recipient").fetchall()


def test_reminders_go_once_to_every_attendee_24_hours_ahead_across_a_dst_change(db):
    # Toronto falls back on 2026-11-01: the event starts 09:00 EST Sunday = 14:00Z;
    # 24 hours earlier is 14:00Z Saturday, which is 10:00 EDT local. The session runs in
    # Toronto, as a server set up there would: a day added there would be 25 hours.
    db.execute("SET TIME ZONE 'America/Toronto'")
    start = datetime(2026, 11, 1, 14, 0, tzinfo=UTC)
    event = _event(db, "Town hall", "confirmed", start, start + timedelta(hours=2))
    draft = _event(db, "Draft thing", "draft", start)
    cancelled = _event(db, "Called off", "cancelled", start)
    for name in ("ana", "ben"):
        customer = _customer(db, name, name.title())
        for attended in (event, draft, cancelled):  # only the confirmed event reminds its attendees
            db.execute("INSERT INTO event_attendees VALUES (%s, %s)", (attended, customer))

    too_early = run_audited(db, _window(start - timedelta(hours=24, minutes=5), run_id="r1"), advance_events)
    assert too_early.details["reminders_queued"] == 0 and _reminders(db) == []

    due = run_audited(db, _window(start - timedelta(hours=24), run_id="r2"), advance_events)
    assert due.details["reminders_queued"] == 2
    for minutes in (5, 10, 600):  # later runs, reruns: never a second reminder
        again = run_audited(db, _window(start - timedelta(hours=24) + timedelta(minutes=minutes), run_id=f"x{minutes}"),
                            advance_events)
        assert again.details["reminders_queued"] == 0
    assert _reminders(db) == [("ana@example.com", "Town hall"), ("ben@example.com", "Town hall")]

    run_audited(db, _window(start, run_id="r3"), advance_events)
    assert db.execute("SELECT status FROM events WHERE id = %s", (event,)).fetchone()[0] == "ongoing"


def test_an_event_moved_after_its_reminder_reminds_again_for_the_new_date_once(db):
    start = datetime(2026, 6, 10, 14, 0, tzinfo=UTC)
    event = _event(db, "Town hall", "confirmed", start)
    db.execute("INSERT INTO event_attendees VALUES (%s, %s)", (event, _customer(db, "ana", "Ana")))
    run_audited(db, _window(start - timedelta(hours=1), run_id="r1"), advance_events)
    moved = start + timedelta(days=2)
    db.execute("UPDATE events SET start_date = %s WHERE id = %s", (moved, event))
    for minutes in (0, 5):
        run_audited(db, _window(moved - timedelta(hours=1, minutes=minutes), run_id=f"r{minutes}"), advance_events)
    starts = db.execute("SELECT (context->>'start_time')::timestamptz FROM email_outbox"
                        " WHERE template = 'event_reminder' ORDER BY id").fetchall()
    assert starts == [(start,), (moved,)]


def test_completed_events_are_archived_after_90_days_and_leave_discovery(db):
    db.execute("SET TIME ZONE 'Europe/London'")  # 90 calendar days there would be 90 x 24 h minus one hour
    due = datetime(2026, 3, 29, 3, 0, tzinfo=UTC)  # the night London springs forward
    old = _event(db, "old", "completed", due - timedelta(days=100), due - timedelta(days=90, seconds=1))
    recent = _event(db, "recent", "completed", due - timedelta(days=100), due - timedelta(days=89))
    just_inside = _event(db, "just inside", "completed", due - timedelta(days=100),
                         due - timedelta(days=90, minutes=-30))
    live = _event(db, "live", "confirmed", due + timedelta(days=1))
    cancelled = _event(db, "called off", "cancelled", due - timedelta(days=101), due - timedelta(days=100))
    never_closed = _event(db, "never closed", "confirmed", due - timedelta(days=101), due - timedelta(days=100))
    outcome = run_audited(db, _window(due, "event_archive"), archive_completed_events)
    assert outcome.details == {"archived": 1, "archived_ids": [old]}
    statuses = dict(db.execute("SELECT id, status FROM events").fetchall())
    assert statuses == {old: "archived", recent: "completed", just_inside: "completed", live: "confirmed",
                        cancelled: "cancelled", never_closed: "confirmed"}  # only completed events are archived
    assert {r[0] for r in db.execute("SELECT id FROM events_discoverable")} == {live, never_closed}
    assert db.execute("SELECT status FROM events WHERE id = %s", (old,)).fetchone()[0] == "archived"


def test_confirmed_reservations_complete_35_minutes_after_they_start(db, caplog):
    caplog.set_level("INFO", logger="ticketflow")
    customer = _customer(db, "cy")
    due = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    rows = {"36 min ago": (due - timedelta(minutes=36), "confirmed"),
            "35 min ago": (due - timedelta(minutes=35), "confirmed"),
            "34 min ago": (due - timedelta(minutes=34), "confirmed"),
            "pending old": (due - timedelta(hours=3), "pending")}
    ids = {}
    for name, (start, status) in rows.items():
        ids[name] = db.execute("INSERT INTO reservations (customer_id, start_time, status) VALUES (%s, %s, %s)"
                               " RETURNING id", (customer, start, status)).fetchone()[0]
    outcome = run_audited(db, _window(due, "reservation_lifecycle"), complete_overdue_reservations)
    assert outcome.details == {"completed": 2, "completed_ids": sorted([ids["36 min ago"], ids["35 min ago"]])}
    assert sorted(r.getMessage() for r in caplog.records if "reservation" in r.getMessage()) == sorted(
        [*(f"auto-completed overdue reservation {ids[name]}" for name in ("36 min ago", "35 min ago")),
         "Auto-completed 2 reservations"])  # the seed's line, once per run
    caplog.clear()
    run_audited(db, _window(due, "reservation_lifecycle", "r2"), complete_overdue_reservations)
    assert [r.getMessage() for r in caplog.records] == ["Auto-completed 0 reservations"]
    statuses = {name: db.execute("SELECT status FROM reservations WHERE id = %s", (i,)).fetchone()[0]
                for name, i in ids.items()}
    assert statuses == {"36 min ago": "completed", "35 min ago": "completed", "34 min ago": "confirmed",
                        "pending old": "pending"}


@pytest.mark.parametrize("start, target", [
    ("pending", "completed"), ("completed", "confirmed"), ("cancelled", "confirmed"), ("completed", "pending"),
    ("confirmed", "pending"), ("cancelled", "completed"),
])
def test_the_database_refuses_transitions_outside_the_workflow(db, start, target):
    customer = _customer(db, "dee")
    reservation = db.execute("INSERT INTO reservations (customer_id, start_time, status) VALUES (%s, now(), 'pending')"
                             " RETURNING id", (customer,)).fetchone()[0]
    path = {"pending": [], "confirmed": ["confirmed"], "completed": ["confirmed", "completed"],
            "cancelled": ["cancelled"]}[start]
    for step in path:
        db.execute("UPDATE reservations SET status = %s WHERE id = %s", (step, reservation))
    with pytest.raises(psycopg.errors.CheckViolation, match=f"cannot go from {start} to {target}"):
        db.execute("UPDATE reservations SET status = %s WHERE id = %s", (target, reservation))
    assert db.execute("SELECT status FROM reservations WHERE id = %s", (reservation,)).fetchone()[0] == start
