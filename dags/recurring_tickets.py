"""
### Recurring tickets

Replaces the seed's Celery beat task `process_recurring_tickets`.

Every five minutes (`TICKETFLOW_SCHEDULE_RECURRING_TICKETS`), each scheduled
recurring template (`is_recurring`, not archived, not paused, not parked) whose
occurrences are due by the run's `data_interval_end` plus its lead time gets
exactly one ticket per occurrence: unique per (`recurring_parent_id`,
`occurrence_at`), created in the same transaction that advances
`next_occurrence`, the pointer only this job writes. Schedules: daily / weekly /
monthly every N, or an RFC 5545 RRULE, in the template's own time zone (DST and
month ends handled from the anchor). Occurrences skipped or moved (the API's
actions) are left out or created at their new instant; `reschedule_at` restarts
a series. Missed occurrences follow the template's `missed_policy`. Templates
that cannot be scheduled are parked with `recurrence_error`.

Audit: `recurring_ticket_runs` (a view of `automation_runs`); summary in XCom.
Backfill with `--max-active-runs 1` to give each interval its own result.
"""

from airflow.sdk import dag, task

from ticketflow import recurring
from ticketflow.dagkit import DAG_DEFAULTS, EVERY_FIVE_MINUTES, audited_batches, schedule_for
from ticketflow.settings import default_timezone


@dag(
    dag_id="recurring_tickets",
    schedule=schedule_for("recurring_tickets", EVERY_FIVE_MINUTES),
    tags=["ticketflow", "tickets", "recurring"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def recurring_tickets():
    @task
    def create_due_occurrences(**context) -> dict:
        """One ticket per due occurrence of every recurring template; pointers advanced."""
        return audited_batches(context, lambda run: recurring.create_due_occurrences(run, default_timezone()))

    create_due_occurrences()


recurring_tickets()
