"""
### Event lifecycle

Replaces the seed's Celery beat task `mark_ended_events_as_completed`.

Every five minutes, confirmed or ongoing events whose `end_date` is before
the run's `data_interval_end` become `completed`, in one set-based UPDATE.
The run is recorded in `automation_runs`; the summary (`completed`) is the
task's XCom. Rerunning or backfilling a past interval gives that interval's
result, because "due" comes from the run, not the wall clock.
"""

import pendulum
from airflow.sdk import dag, task

from ticketflow import events
from ticketflow.dagkit import DEFAULT_ARGS, EVERY_FIVE_MINUTES, audited_task


@dag(
    dag_id="event_lifecycle",
    schedule=EVERY_FIVE_MINUTES,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ticketflow", "events", "lifecycle"],
    doc_md=__doc__,
)
def event_lifecycle():
    @task
    def complete_ended_events(**context) -> dict:
        """Confirmed/ongoing events past their end become completed."""
        return audited_task(context, events.complete_ended_events)

    complete_ended_events()


event_lifecycle()
