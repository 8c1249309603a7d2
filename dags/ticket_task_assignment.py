"""
### Ticket task assignment

Replaces the seed's `create_task_for_ticket`. Runs continuously:
`wait_for_waiting_tickets` defers to the triggerer (no worker slot while
idle) and wakes on the NOTIFY of every insert into `tickets`, from
`ticket_intake`, `recurring_tickets` or any other application, at the latest
every 30 s or when a retry falls due. `assign_tasks` then serves every
waiting ticket: workflow matching (department + category + sub-category, else
department + category; published and deployed; first step by order), one TTS
call per role per batch, the durable round-robin (least recently assigned
first, `TICKETFLOW_MAX_ASSIGNMENTS` users, default 3), and one transaction per
ticket (task, allocated flag, rotation). Tickets that cannot be served keep
`allocation_error` and are retried with backoff.
"""

from datetime import timedelta

from airflow.sdk import dag, task

from ticketflow import assignment, settings
from ticketflow.dagkit import DAG_DEFAULTS, audited_batches
from ticketflow.settings import TICKETING_DB_CONN_ID
from ticketflow.tts import TtsClient
from ticketflow.waiting import WaitForRows


@dag(
    dag_id="ticket_task_assignment",
    schedule="@continuous",
    tags=["ticketflow", "tickets", "assignment"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def ticket_task_assignment():
    wait = WaitForRows(task_id="wait_for_waiting_tickets", conn_id=TICKETING_DB_CONN_ID,
                       channel="ticketflow_tickets", ready_query="assignment/ready", poll_seconds=30,
                       max_wait_seconds=3600, execution_timeout=timedelta(minutes=70))

    @task
    def assign_tasks(**context) -> dict:
        """Every waiting ticket gets its task, or its reason and a later retry."""
        return audited_batches(context, lambda run: assignment.assign_waiting_tickets(
            run, TtsClient().users_for_role, settings.max_assignments()))

    wait >> assign_tasks()


ticket_task_assignment()
