"""Schedules come from TICKETFLOW_SCHEDULE_<DAG_ID>: every scheduled DAG reads its own, and a bad one is an import
error that names the variable and says why."""

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.timetables.trigger import CronTriggerTimetable, DeltaTriggerTimetable

from ticketflow.settings import PROJECT_ROOT

DAGS_DIR = PROJECT_ROOT / "dags"
DAG_IDS = sorted(path.stem for path in DAGS_DIR.glob("*.py"))
#: The DAGs that run on a clock (the others are manual or continuous) and their schedules when nothing is set.
DEFAULTS = {"recurring_tickets": "*/5 * * * *", "reservation_lifecycle": "*/5 * * * *",
            "event_lifecycle": "*/5 * * * *", "tdx_ticket_queue": "*/5 * * * *", "event_archive": "30 2 * * *",
            "retention": "15 3 * * *", "alerts": "*/5 * * * *"}


def _parse(monkeypatch, values: dict[str, str]) -> DagBag:
    for dag_id in DAG_IDS:
        monkeypatch.delenv(f"TICKETFLOW_SCHEDULE_{dag_id.upper()}", raising=False)
    for dag_id, value in values.items():
        monkeypatch.setenv(f"TICKETFLOW_SCHEDULE_{dag_id.upper()}", value)
    return DagBag(dag_folder=str(DAGS_DIR))


def _schedule(dag) -> str | None:
    timetable = dag.timetable
    if isinstance(timetable, CronTriggerTimetable):
        return timetable.expression
    if isinstance(timetable, DeltaTriggerTimetable):
        return f"every {timetable.delta.total_seconds():.0f}s"
    return None


def test_without_settings_the_schedules_are_the_defaults(monkeypatch):
    bag = _parse(monkeypatch, {dag_id: "" for dag_id in DAG_IDS})  # empty counts as unset (compose passes ${X:-})
    assert bag.import_errors == {}
    assert {dag_id: _schedule(dag) for dag_id, dag in bag.dags.items() if _schedule(dag)} == DEFAULTS


def test_every_scheduled_dag_takes_its_own_variable_and_the_others_ignore_theirs(monkeypatch):
    """Each DAG gets a different minute, so a DAG reading another's variable (or none) shows."""
    chosen = {dag_id: f"{minute} */2 * * *" for minute, dag_id in enumerate(DAG_IDS)}
    chosen["tdx_ticket_queue"] = "300"  # the seed daemon's --interval, in seconds
    chosen["event_archive"] = "@daily"
    bag = _parse(monkeypatch, chosen)
    assert bag.import_errors == {}
    expected = {dag_id: chosen[dag_id] for dag_id in DEFAULTS}
    expected.update({"tdx_ticket_queue": "every 300s", "event_archive": "0 0 * * *"})
    assert {dag_id: _schedule(dag) for dag_id, dag in bag.dags.items() if _schedule(dag)} == expected
    assert {dag_id for dag_id, dag in bag.dags.items() if not _schedule(dag)} == set(DAG_IDS) - set(DEFAULTS)


@pytest.mark.parametrize("value, why", [
    ("*/10 * * *", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 4"),
    ("61 * * * *", "[61 * * * *] is not acceptable, out of range"),
    ("0 0 31 2 *", "it never fires"),
    ("@fortnightly", "Airflow's presets are @hourly, @daily, @weekly, @monthly, @quarterly and @yearly"),
    ("30", "an interval in seconds must be 60 to 31622400 (a year)"),
    ("5m", "a cron expression has 5 fields (minute hour day-of-month month day-of-week), this one has 1"),
])
def test_a_bad_schedule_is_an_import_error_naming_the_variable_and_why(monkeypatch, value, why):
    bag = _parse(monkeypatch, {"event_lifecycle": value})
    assert "event_lifecycle" not in bag.dag_ids and "reservation_lifecycle" in bag.dag_ids  # only that file fails
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("event_lifecycle.py")
    assert f"TICKETFLOW_SCHEDULE_EVENT_LIFECYCLE={value!r} is not a schedule: {why}" in error
