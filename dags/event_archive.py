"""
### Event archive

Once a day (02:30 UTC; `TICKETFLOW_SCHEDULE_EVENT_ARCHIVE`), completed events whose `end_date` is more than
`TICKETFLOW_EVENT_ARCHIVE_DAYS` (90) before the run's `data_interval_end`
become `archived` (the seed's planned `archive_old_completed_events`).
Archived events leave `events_discoverable` and stay readable by id.
"""

from airflow.sdk import dag, task

from ticketflow import events
from ticketflow.dagkit import DAG_DEFAULTS, audited_task, schedule_for


@dag(
    dag_id="event_archive",
    schedule=schedule_for("event_archive", "30 2 * * *"),
    tags=["ticketflow", "events", "lifecycle"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def event_archive():
    @task
    def archive_completed_events(**context) -> dict:
        """Completed events past the retention period become archived."""
        return audited_task(context, events.archive_completed_events)

    archive_completed_events()


event_archive()
