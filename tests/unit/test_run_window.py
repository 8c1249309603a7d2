"""The instant a run decides "due" against, for every kind of run Airflow makes."""

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from ticketflow.dagkit import run_window

TICK = datetime(2026, 11, 1, 6, 5, tzinfo=UTC)
TRIGGERED = datetime(2026, 11, 1, 6, 7, 31, tzinfo=UTC)


def _context(**values):
    dag_run = SimpleNamespace(dag_id="event_lifecycle", run_id=values.pop("run_id", "r1"),
                              run_after=values.pop("run_after", TRIGGERED),
                              run_type=values.pop("run_type", "scheduled"))
    return {"dag_run": dag_run, "ti": SimpleNamespace(try_number=values.pop("try_number", 1)), **values}


def test_a_scheduled_or_backfill_run_decides_against_its_interval_end():
    window = run_window(_context(data_interval_start=TICK, data_interval_end=TICK, logical_date=TICK))
    assert (window.due_at, window.data_interval_start, window.data_interval_end) == (TICK, TICK, TICK)


def test_a_rest_triggered_run_without_logical_date_decides_against_run_after():
    window = run_window(_context(data_interval_start=None, data_interval_end=None, logical_date=None))
    assert window.due_at == TRIGGERED
    assert window.data_interval_end is None


def test_a_manual_run_with_a_logical_date_but_no_interval_uses_the_logical_date():
    assert run_window(_context(logical_date=TICK)).due_at == TICK


def test_a_manual_run_for_a_future_logical_date_is_refused_and_a_past_one_is_fine():
    from airflow.sdk.exceptions import AirflowFailException

    tomorrow = TRIGGERED.replace(day=2)
    with pytest.raises(AirflowFailException, match="Ticketflow does not act on the future"):
        run_window(_context(run_type="manual", logical_date=tomorrow, data_interval_end=tomorrow))
    assert run_window(_context(run_type="manual", logical_date=TICK, data_interval_end=TICK)).due_at == TICK


def test_identity_and_try_number_are_carried():
    window = run_window(_context(run_id="manual__x", try_number=3, data_interval_end=TICK))
    assert (window.dag_id, window.run_id, window.try_number) == ("event_lifecycle", "manual__x", 3)


def test_a_run_with_no_instant_at_all_is_refused():
    with pytest.raises(ValueError, match="no data interval"):
        run_window(_context(run_after=None))
