"""The TDX queue's run: only scheduled runs act unasked (others need dry_run=false); batches Airflow can map."""

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from airflow.utils.types import DagRunType

from ticketflow.tdx.queue import in_batches
from ticketflow.tdx.runs import clear_failed, is_dry_run


@pytest.mark.parametrize(("run_type", "dry_run_param", "expected"), [
    (DagRunType.SCHEDULED, True, False),   # the Param's default does not stop the schedule
    (DagRunType.SCHEDULED, False, False),
    (DagRunType.MANUAL, True, True),       # the trigger form's default: look, do not touch
    (DagRunType.MANUAL, False, False),
    (DagRunType.BACKFILL_JOB, True, True),
    (DagRunType.ASSET_TRIGGERED, False, False),
])
def test_dry_run_rule(run_type, dry_run_param, expected):
    context = {"dag_run": SimpleNamespace(run_type=run_type), "params": {"dry_run": dry_run_param}}
    assert is_dry_run(context) is expected


@pytest.mark.parametrize("run_type", [DagRunType.SCHEDULED, DagRunType.MANUAL])
def test_the_dry_run_setting_stops_every_run_from_acting(run_type, monkeypatch):
    monkeypatch.setenv("TICKETFLOW_TDX_DRY_RUN", "true")
    assert is_dry_run({"dag_run": SimpleNamespace(run_type=run_type), "params": {"dry_run": False}}) is True
    monkeypatch.setenv("TICKETFLOW_TDX_DRY_RUN", "maybe")
    with pytest.raises(ValueError, match="TICKETFLOW_TDX_DRY_RUN must be true or false, got 'maybe'"):
        is_dry_run({"dag_run": SimpleNamespace(run_type=run_type), "params": {"dry_run": False}})


def test_batches_grow_rather_than_exceed_what_airflow_can_map():
    assert in_batches(list(range(10)), 4, max_batches=1024) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    batches = in_batches(list(range(5000)), 1, max_batches=1024)
    assert len(batches) <= 1024 and sum(batches, []) == list(range(5000))
    assert in_batches([], 100, max_batches=1024) == []


@pytest.mark.parametrize("params", [{"ticket_id": None, "all": False}, {"ticket_id": 5, "all": True}, {}])
def test_clearing_failures_takes_one_ticket_or_all_said_explicitly_and_fails_before_connecting(params):
    with pytest.raises(AirflowFailException, match="give ticket_id .* or all: true .* nothing cleared"):
        clear_failed({"params": params})
