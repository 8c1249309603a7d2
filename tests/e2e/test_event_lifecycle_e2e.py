"""event_lifecycle in the real Airflow: triggered through the REST API, and backfilled with the CLI."""

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e
DAG_ID = "event_lifecycle"
TASK_ID = "advance_events"


def _add_events(db, rows):
    for title, status, end in rows:
        db.execute("INSERT INTO events (title, start_date, end_date, status) VALUES (%s, %s, %s, %s)",
                   (title, end - timedelta(hours=1), end, status))


def _statuses(db):
    return dict(db.execute("SELECT title, status FROM events").fetchall())


def test_a_run_triggered_through_the_rest_api_completes_ended_events(api, stack_db):
    api.wait_for_quiet_window(DAG_ID, seconds=30)
    now = datetime.now(UTC)
    _add_events(stack_db, [("ended", "confirmed", now - timedelta(seconds=5)),
                           ("ongoing-ended", "ongoing", now - timedelta(seconds=2)),
                           ("tomorrow", "confirmed", now + timedelta(days=1)),
                           ("draft", "draft", now - timedelta(hours=1))])

    run = api.trigger(DAG_ID)
    assert run["logical_date"] is None
    finished = api.wait_for_run(DAG_ID, run["dag_run_id"])

    assert finished["state"] == "success"
    summary = api.xcom(DAG_ID, run["dag_run_id"], TASK_ID)
    assert summary["completed"] == 2
    assert _statuses(stack_db) == {"ended": "completed", "ongoing-ended": "completed",
                                   "tomorrow": "confirmed", "draft": "draft"}
    assert summary["started"] == 0
    audit = stack_db.execute("SELECT status, changed, due_at, data_interval_end FROM automation_runs"
                             " WHERE dag_id = %s AND run_id = %s", (DAG_ID, run["dag_run_id"])).fetchone()
    assert audit[:2] == ("success", 2)
    assert audit[2] == datetime.fromisoformat(run["run_after"].replace("Z", "+00:00"))
    assert audit[3] is None


def test_a_backfill_gives_each_interval_what_a_scheduled_run_would(api, stack, stack_db):
    day = datetime(2026, 1, 10, tzinfo=UTC)
    events = [("ends-10:02", "confirmed", day.replace(hour=10, minute=2)),
              ("ends-10:12", "ongoing", day.replace(hour=10, minute=12)),
              ("ends-10:20", "confirmed", day.replace(hour=10, minute=20)),
              ("draft-10:01", "draft", day.replace(hour=10, minute=1))]
    api.wait_for_quiet_window(DAG_ID, seconds=100)
    _add_events(stack_db, events)

    created = stack.airflow("backfill", "create", "--dag-id", DAG_ID,
                            "--from-date", "2026-01-10T10:00:00+00:00", "--to-date", "2026-01-10T10:15:00+00:00",
                            "--max-active-runs", "1")
    assert created.returncode == 0, created.stderr
    backfill_runs = api.wait_for_runs(DAG_ID, count=4, run_type="backfill")
    assert sorted(r["logical_date"] for r in backfill_runs) == [
        "2026-01-10T10:00:00Z", "2026-01-10T10:05:00Z", "2026-01-10T10:10:00Z", "2026-01-10T10:15:00Z"]
    assert {r["state"] for r in backfill_runs} == {"success"}

    per_interval = stack_db.execute(
        "SELECT to_char(due_at AT TIME ZONE 'UTC', 'HH24:MI'), (details->>'completed')::int,"
        " (details->>'started')::int FROM automation_runs WHERE run_id LIKE 'backfill%%' ORDER BY due_at").fetchall()
    assert per_interval == [("10:00", 0, 2), ("10:05", 1, 0), ("10:10", 0, 0), ("10:15", 1, 0)]  # 10:12 was ongoing
    after_backfill = _statuses(stack_db)
    assert after_backfill == {"ends-10:02": "completed", "ends-10:12": "completed",
                              "ends-10:20": "ongoing", "draft-10:01": "draft"}

    # Rerunning the 10:15 interval on the original data (cleared from the REST API, as an
    # operator would) decides against 10:15 again and reaches the same state in one run.
    stack_db.execute("TRUNCATE events CASCADE")
    _add_events(stack_db, events)
    [last] = [r for r in backfill_runs if r["logical_date"] == "2026-01-10T10:15:00Z"]
    api.clear(DAG_ID, last["dag_run_id"])
    assert api.wait_for_run(DAG_ID, last["dag_run_id"])["state"] == "success"
    assert api.xcom(DAG_ID, last["dag_run_id"], TASK_ID)["completed"] == 2
    assert _statuses(stack_db) == after_backfill
