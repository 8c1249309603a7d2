"""
### Ticket task assignment

Replaces the seed's `create_task_for_ticket`. Runs continuously:
`wait_for_waiting_tickets` defers to the triggerer (no worker slot while
idle) and wakes on the NOTIFY of every insert into `tickets`, from
`ticket_intake`, `POST /ticketflow/tickets`, `recurring_tickets` or any
other application, at the latest every 30 s or when a retry falls due. It
then shares the waiting tickets out by role into units of about the same
size (one per 1,000 tickets, at most `TICKETFLOW_ASSIGNMENT_UNITS`, default 4;
a few tickets are one unit), and `assign_tasks` maps over them, so units
run on different workers at once. Each unit serves its roles' tickets:
workflow matching (department + category + sub-category, else department +
category; published and deployed; first step by order), one TTS call per
role per batch, the durable round-robin (least recently assigned first,
`TICKETFLOW_MAX_ASSIGNMENTS` users, default 3; each role's rotation under
its own lock), and one transaction per ticket (task, allocated flag,
rotation). Tickets that cannot be served keep `allocation_error` and are
retried with backoff. The run's audit row is closed by the last unit.
"""

from datetime import timedelta

from airflow.sdk import dag, get_current_context, task

from ticketflow import assignment, settings
from ticketflow.dagkit import DAG_DEFAULTS, audited_part
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
                       max_wait_seconds=3600, execution_timeout=timedelta(minutes=70),
                       plan=lambda conn: assignment.plan_units(conn, settings.assignment_units()))

    @task(map_index_template="{{ unit_label }}")
    def assign_tasks(unit: dict, **context) -> dict:
        """Every waiting ticket of the unit's roles gets its task, or its reason and a later retry."""
        get_current_context()["unit_label"] = unit["label"]
        return audited_part(context, unit["part"], unit["parts"], lambda run: assignment.assign_waiting_tickets(
            run, TtsClient().users_for_role, settings.max_assignments(), roles=unit["roles"]))

    assign_tasks.expand(unit=wait.output)


ticket_task_assignment()
