"""
### Retention

Once a day (03:15 UTC; `TICKETFLOW_SCHEDULE_RETENTION`), as of the run's
`data_interval_end`, deletes what is older than its age
(`TICKETFLOW_RETENTION_DAYS_<WHAT>`, in days, or `never`):

- `automation_runs` rows (90; the latest run of each automation stays);
- sent `email_outbox` messages (30; queued and dead ones stay, and so does the
  reminder of an event still to come);
- `recurring_occurrence_skips` (180; a skip at or after its template's pointer stays, and a move the job still needs);
- archived events, with their attendees (365 after they ended);
- the TDX action log of tickets no report has listed for that long (180; never
  a ticket still listed, nor one with a pending action);
- raised alerts (180; not one that still lists an open item);
- Airflow's own metadata (30), as `airflow db clean` does, through the
  `airflow_metadata_db` connection (skipped when it is not defined).

Small batches, each its own transaction (SKIP LOCKED: it never waits for the
other DAGs, nor makes them wait). Audit: `automation_runs`, whose `details`
count what was deleted per table; the counts are also the tasks' XCom.
"""

from airflow.sdk import dag, task

from ticketflow import retention as policy
from ticketflow.dagkit import DAG_DEFAULTS, schedule_for


@dag(
    dag_id="retention",
    schedule=schedule_for("retention", "15 3 * * *"),
    tags=["ticketflow", "retention"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def retention():
    @task
    def delete_old_rows(**context) -> dict:
        """The application's rows past their age, batch by batch."""
        return policy.delete_old_rows_task(context)

    @task
    def clean_airflow_metadata(**context) -> dict:
        """Airflow's metadata past its age (airflow db clean); closes the run's audit row."""
        return policy.clean_airflow_metadata_task(context)

    delete_old_rows() >> clean_airflow_metadata()


retention()
