"""
### Re-queue dead email

Manual only. Messages that `notifications` parked as `dead` (see
`email_outbox.last_error`) get a fresh set of attempts: all of them, or only
the ids given in `message_ids`. Fix the cause first (a recipient address, the
SMTP credentials). The same as
`UPDATE email_outbox SET status = 'queued', attempts = 0 WHERE status = 'dead'`.
"""

from contextlib import closing

from airflow.sdk import Param, dag, task

from ticketflow import outbox, settings
from ticketflow.dagkit import DAG_DEFAULTS, app_connection


@dag(
    dag_id="email_requeue",
    schedule=None,
    tags=["ticketflow", "email", "outbox"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
    params={
        "message_ids": Param([], type="array", maxItems=1000,
                             items={"type": "integer", "minimum": 1, "maximum": settings.ROW_MAX_ID},
                             description="Ids of dead messages to re-queue (at most 1,000); empty means every dead"
                                         " message."),
    },
)
def email_requeue():
    @task
    def requeue_dead_messages(params=None) -> int:
        """Dead messages go back to the queue with zero attempts."""
        with closing(app_connection()) as conn:
            return outbox.requeue_dead(conn, params["message_ids"])

    requeue_dead_messages()


email_requeue()
