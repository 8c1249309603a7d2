"""
### Event archive

Once a day, completed events whose `end_date` is more than
`TICKETFLOW_EVENT_ARCHIVE_DAYS` (90) before the run's `data_interval_end`
become `archived` (the seed's planned `archive_old_completed_events`).
Archived events leave `events_discoverable` and stay readable by id.
"""

import pendulum
from airflow.sdk import dag, task

from ticketflow import events
from ticketflow.dagkit import DEFAULT_ARGS, audited_task


@dag(
    dag_id="event_archive",
    schedule="30 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ticketflow", "events", "lifecycle"],
    doc_md=__doc__,
)
def event_archive():
    @task
    def archive_completed_events(**context) -> dict:
        """Completed events past the retention period become archived."""
        return audited_task(context, events.archive_completed_events)

    archive_completed_events()


event_archive()
