"""
### Ticket intake

Replaces the seed's Celery task `receive_ticket`. Trigger it from the UI form
or `POST /api/v2/dags/ticket_intake/dagRuns` with the ticket as `conf`
(required: subject, department, category; optional: external_id, description,
sub_category, priority, requester_email). Airflow validates `conf` against the
Params' JSON schema before the run exists; the task validates the whole `conf`
again before writing (a misspelt field fails the run, it is not dropped), and a
bad ticket fails at once, without retries. A ticket whose `external_id` is known updates that ticket. XCom:
`{"ticket_id", "action": "created" | "updated"}`. A new ticket wakes
`ticket_task_assignment` at once (PostgreSQL NOTIFY), no schedule involved.
Many tickets at once: `POST /ticketflow/tickets` takes up to 1,000 per request,
with the same validation.
"""

from contextlib import closing

from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from ticketflow import intake
from ticketflow.dagkit import DAG_DEFAULTS, app_connection


@dag(
    dag_id="ticket_intake",
    schedule=None,
    tags=["ticketflow", "tickets", "intake"],
    doc_md=__doc__,
    params={name: Param(None if name in intake.OPTIONAL else "", **intake.FIELD_SCHEMAS[name])
            for name in (*intake.REQUIRED, *intake.OPTIONAL)},
    **{**DAG_DEFAULTS, "max_active_runs": 16},
)
def ticket_intake():
    @task
    def receive_ticket(params=None, dag_run=None) -> dict:
        """Validate, then insert (once per run) or update by external_id."""
        fields = {**{name: params.get(name) for name in (*intake.REQUIRED, *intake.OPTIONAL)}, **(dag_run.conf or {})}
        try:
            with closing(app_connection()) as conn:
                return intake.receive_ticket(conn, fields, intake_key=f"{dag_run.dag_id}/{dag_run.run_id}")
        except intake.InvalidTicket as exc:
            raise AirflowFailException(str(exc)) from exc  # the same conf would fail every retry

    receive_ticket()


ticket_intake()
