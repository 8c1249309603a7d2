"""
### Clear failed TDX actions

Manual only. Actions that TDX refused are logged `failed` and not tried
again. After fixing the cause, clear them (one ticket, or all) and the next
`tdx_ticket_queue` run tries them again. The seed's
`tracker.clear_failed_actions(ticket_id)`.
"""

from airflow.sdk import Param, dag, task

from ticketflow import settings
from ticketflow.dagkit import DAG_DEFAULTS
from ticketflow.tdx import runs


@dag(
    dag_id="tdx_clear_failed_actions",
    schedule=None,
    tags=["ticketflow", "tdx"],
    doc_md=__doc__,
    params={"ticket_id": Param(None, type=["null", "integer"], minimum=1, maximum=settings.TDX_MAX_ID,
                               description="Clear only this ticket's failed actions; empty clears all.")},
    **DAG_DEFAULTS,
)
def tdx_clear_failed_actions():
    @task
    def clear_failed(**context) -> dict:
        """Delete the failed rows so the queue tries those actions again."""
        return runs.clear_failed(context)

    clear_failed()


tdx_clear_failed_actions()
