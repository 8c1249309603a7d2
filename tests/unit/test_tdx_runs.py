"""Only scheduled runs of the TDX queue act unasked; a run asked for by hand acts only with dry_run=false."""

from types import SimpleNamespace

import pytest
from airflow.utils.types import DagRunType

from ticketflow.tdx.runs import is_dry_run


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
