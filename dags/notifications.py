"""
### Notifications

Sends the email queued in `email_outbox`: reservation confirmed / cancelled
(to the customer), new reservation (to `TICKETFLOW_ADMIN_EMAIL`), event
reminders (to attendees). Runs continuously: `wait_for_queued_email` defers
to the triggerer (no worker slot while idle), which wakes on PostgreSQL
NOTIFY from the outbox within a second, and at the latest every 30 s or when
a retry falls due. `send_queued_email` then sends one message per
transaction through `smtp_default`: marked sent with its time and Message-ID,
or retried with exponential backoff, or parked as `dead` after
`TICKETFLOW_OUTBOX_MAX_ATTEMPTS` (8). An unreachable SMTP server costs no
message an attempt: the task fails and Airflow retries it.
"""

from datetime import timedelta

from airflow.sdk import dag, task

from ticketflow import outbox
from ticketflow.dagkit import DAG_DEFAULTS, audited_batches
from ticketflow.settings import TICKETING_DB_CONN_ID
from ticketflow.waiting import WaitForRows


@dag(
    dag_id="notifications",
    schedule="@continuous",
    tags=["ticketflow", "email", "outbox"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def notifications():
    wait = WaitForRows(task_id="wait_for_queued_email", conn_id=TICKETING_DB_CONN_ID, channel="ticketflow_outbox",
                       ready_query="outbox/ready", poll_seconds=30, max_wait_seconds=3600,
                       execution_timeout=timedelta(minutes=70))

    @task
    def send_queued_email(**context) -> dict:
        """Every message due now, one transaction each."""
        return audited_batches(context, outbox.send_queued_email)

    wait >> send_queued_email()


notifications()
