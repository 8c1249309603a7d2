"""
### Reservation lifecycle

Replaces the seed's Celery beat task `check_overdue_reservations`.

Every five minutes (`TICKETFLOW_SCHEDULE_RESERVATION_LIFECYCLE`), confirmed reservations whose `start_time` is at least
`TICKETFLOW_RESERVATION_GRACE_MINUTES` (35) before the run's
`data_interval_end` become `completed`, in one set-based UPDATE (the seed
saved them one by one). The status emails of the seed's signals are queued by
a database trigger on `reservations` and sent by `notifications`.

Audit: `automation_runs`; the count is the task's XCom.
"""

from airflow.sdk import dag, task

from ticketflow import reservations
from ticketflow.dagkit import DAG_DEFAULTS, EVERY_FIVE_MINUTES, audited_task, schedule_for


@dag(
    dag_id="reservation_lifecycle",
    schedule=schedule_for("reservation_lifecycle", EVERY_FIVE_MINUTES),
    tags=["ticketflow", "reservations", "lifecycle"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def reservation_lifecycle():
    @task
    def complete_overdue_reservations(**context) -> dict:
        """Confirmed reservations past start + grace become completed."""
        return audited_task(context, reservations.complete_overdue_reservations)

    complete_overdue_reservations()


reservation_lifecycle()
