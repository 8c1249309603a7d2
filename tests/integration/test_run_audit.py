"""The audit of runs: units commit with their totals, failures are recorded, the failure callback closes dead runs."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from ticketflow.audit import AuditedRun, RunWindow
from ticketflow.dagkit import record_failure

WINDOW = RunWindow(dag_id="recurring_tickets", run_id="scheduled__x", due_at=datetime(2026, 5, 1, tzinfo=UTC))


def _row(db):
    return db.execute("SELECT status, processed, changed, skipped, details, error FROM automation_runs"
                      " WHERE run_id = %s", (WINDOW.run_id,)).fetchone()


def test_units_commit_their_totals_and_a_later_failure_keeps_what_was_committed(db):
    with pytest.raises(RuntimeError, match="third batch"):
        with AuditedRun(db, WINDOW) as run:
            for batch in range(3):
                with run.unit() as outcome:
                    db.execute("INSERT INTO events (title, start_date) VALUES (%s, now())", (f"batch {batch}",))
                    outcome.processed, outcome.changed = 10, 2
                    outcome.details = {"created": 2, "invalid_templates": [batch]}
                    if batch == 2:
                        raise RuntimeError("third batch failed")
    status, processed, changed, skipped, details, error = _row(db)
    assert (status, processed, changed, skipped) == ("error", 20, 4, 0)
    assert details == {"created": 4, "invalid_templates": [0, 1]}
    assert error == "RuntimeError: third batch failed"
    assert [t for (t,) in db.execute("SELECT title FROM events ORDER BY title")] == ["batch 0", "batch 1"]


def test_a_retry_of_the_same_run_adds_to_what_earlier_tries_committed(db):
    with pytest.raises(RuntimeError):
        with AuditedRun(db, WINDOW) as run:
            with run.unit() as outcome:
                outcome.processed, outcome.details = 5, {"created": 5, "invalid_templates": ["a"]}
            raise RuntimeError("worker lost")
    with AuditedRun(db, RunWindow(**{**WINDOW.__dict__, "try_number": 2})) as retry, retry.unit() as outcome:
        outcome.processed, outcome.details = 3, {"created": 3, "invalid_templates": ["b"]}
    assert retry.outcome.processed == 3  # this try's share, for its XCom
    status, processed, _, _, details, error = _row(db)
    assert (status, processed, details, error) == ("success", 8, {"created": 8, "invalid_templates": ["a", "b"]}, None)
    assert db.execute("SELECT count(*), max(try_number) FROM automation_runs").fetchone() == (1, 2)


def test_the_failure_callback_closes_a_run_that_died_without_closing_itself(db, app_db_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_TICKETING_DB", app_db_url)
    AuditedRun(db, WINDOW).__enter__()  # started, then the worker was killed: the row says running
    context = {"dag_run": SimpleNamespace(dag_id=WINDOW.dag_id, run_id=WINDOW.run_id),
               "exception": TimeoutError("task timed out")}
    record_failure(context)
    status, *_, error = _row(db)
    assert status == "error" and "task timed out" in error

    record_failure({**context, "exception": ValueError("later")})  # a closed row is left as it is
    assert "task timed out" in _row(db)[-1]
