"""The event lifecycle statement and the run audit, against a real PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest

from ticketflow import queries
from ticketflow.audit import RunWindow, run_audited
from ticketflow.events import advance_events as complete_ended_events

DUE = datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def _window(run_id="scheduled__1", due=DUE, try_number=1):
    return RunWindow(dag_id="event_lifecycle", run_id=run_id, due_at=due,
                     data_interval_start=due, data_interval_end=due, try_number=try_number)


def _event(db, title, status, end):
    db.execute("INSERT INTO events (title, start_date, end_date, status) VALUES (%s, %s, %s, %s)",
               (title, (end or DUE) - timedelta(hours=2), end, status))


def _statuses(db):
    return dict(db.execute("SELECT title, status FROM events").fetchall())


def _audit(db):
    return db.execute("SELECT run_id, due_at, status, processed, changed, details, error, try_number"
                      " FROM automation_runs ORDER BY id").fetchall()


def test_only_live_events_that_ended_before_the_due_instant_are_completed(db):
    _event(db, "confirmed-ended", "confirmed", DUE - timedelta(minutes=1))
    _event(db, "ongoing-ended", "ongoing", DUE - timedelta(days=30))
    _event(db, "ends-exactly-at-due", "confirmed", DUE)
    _event(db, "ends-later", "ongoing", DUE + timedelta(seconds=1))
    _event(db, "draft-ended", "draft", DUE - timedelta(hours=1))
    _event(db, "cancelled-ended", "cancelled", DUE - timedelta(hours=1))
    _event(db, "no-end", "confirmed", None)

    outcome = run_audited(db, _window(), complete_ended_events)

    ids = dict(db.execute("SELECT title, id FROM events").fetchall())
    assert outcome.details == {"completed": 2, "started": 2, "reminders_queued": 0,
                               "completed_ids": sorted([ids["confirmed-ended"], ids["ongoing-ended"]]),
                               "started_ids": sorted([ids["ends-exactly-at-due"], ids["no-end"]])}
    assert (outcome.processed, outcome.changed) == (4, 4)
    assert _statuses(db) == {
        "confirmed-ended": "completed", "ongoing-ended": "completed",
        "ends-exactly-at-due": "ongoing", "no-end": "ongoing",  # started two hours ago, not ended
        "ends-later": "ongoing", "draft-ended": "draft", "cancelled-ended": "cancelled",
    }
    [(run_id, due_at, status, processed, changed, details, error, _)] = _audit(db)
    assert (run_id, due_at, status, processed, changed, details["completed"], error) == (
        "scheduled__1", DUE, "success", 4, 4, 2, None)


def test_a_rerun_of_the_same_run_is_idempotent_and_updates_its_audit_row(db):
    _event(db, "ended", "confirmed", DUE - timedelta(minutes=5))
    run_audited(db, _window(), complete_ended_events)
    rerun = run_audited(db, _window(try_number=2), complete_ended_events)

    assert rerun.changed == 0
    assert _statuses(db) == {"ended": "completed"}
    [(_, _, status, _, changed, _, _, try_number)] = _audit(db)
    assert (status, changed, try_number) == ("success", 1, 2)  # the run's total over both tries


def test_a_past_interval_gives_that_intervals_result(db):
    _event(db, "ended-early", "confirmed", DUE - timedelta(hours=2))
    _event(db, "ended-late", "confirmed", DUE - timedelta(minutes=1))

    early = run_audited(db, _window("backfill__a", DUE - timedelta(hours=1)), complete_ended_events)
    assert (early.details["completed"], early.details["started"]) == (1, 1)
    assert _statuses(db) == {"ended-early": "completed", "ended-late": "ongoing"}


def test_a_failing_run_rolls_back_its_work_and_records_the_error(db):
    _event(db, "ended", "confirmed", DUE - timedelta(minutes=5))

    def completes_then_fails(conn, window):
        complete_ended_events(conn, window)
        raise RuntimeError("lost the database half-way")

    with pytest.raises(RuntimeError):
        run_audited(db, _window(), completes_then_fails)

    assert _statuses(db) == {"ended": "confirmed"}
    [(_, _, status, processed, changed, _, error, _)] = _audit(db)
    assert (status, processed, changed) == ("error", 0, 0)
    assert error == "RuntimeError: lost the database half-way"


def test_the_completion_reads_the_partial_index(db):
    db.execute("INSERT INTO events (title, start_date, end_date, status)"
               " SELECT 'e' || g, %s - interval '1 day', %s + g * interval '1 minute', 'confirmed'"
               " FROM generate_series(1, 5000) g", (DUE, DUE))
    db.execute("ANALYZE events")
    plan = "\n".join(row[0] for row in db.execute(
        "EXPLAIN " + queries.load("events/complete_ended"), {"due_at": DUE}).fetchall())
    assert "events_live_end" in plan
