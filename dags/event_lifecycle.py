"""
### Event lifecycle

Replaces the seed's Celery beat task `mark_ended_events_as_completed` and
builds its planned extensions.

Every five minutes (`TICKETFLOW_SCHEDULE_EVENT_LIFECYCLE`), as of the run's `data_interval_end`, in one transaction:
confirmed or ongoing events whose `end_date` has passed become `completed`;
confirmed events that have started become `ongoing`; every attendee of a
confirmed event starting within `TICKETFLOW_EVENT_REMINDER_HOURS` (24) gets a
reminder queued in `email_outbox`, once per attendee and event. The
`notifications` DAG sends it. Archiving runs daily in `event_archive`.

Audit: `automation_runs`; the counts are the task's XCom. Rerunning or
backfilling a past interval gives that interval's result.
"""

from airflow.sdk import dag, task

from ticketflow import events
from ticketflow.dagkit import DAG_DEFAULTS, EVERY_FIVE_MINUTES, audited_task, schedule_for


@dag(
    dag_id="event_lifecycle",
    schedule=schedule_for("event_lifecycle", EVERY_FIVE_MINUTES),
    tags=["ticketflow", "events", "lifecycle"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def event_lifecycle():
    @task
    def advance_events(**context) -> dict:
        """Complete ended events, start begun ones, queue reminders."""
        return audited_task(context, events.advance_events)

    advance_events()


event_lifecycle()
