"""
### Clear failed TDX actions

Manual only. Actions that TDX refused are logged `failed` and not tried
again. After fixing the cause, clear them and the next `tdx_ticket_queue`
run tries them again: one ticket's (`ticket_id`), or every ticket's
(`all: true`, never implied by leaving `ticket_id` out: a run with neither
or both fails at once and clears nothing). The seed's
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
                               description="The TDX ticket whose failed actions to clear."),
            "all": Param(False, type="boolean",
                         description="Clear the failed actions of every ticket instead (leave ticket_id empty).")},
    **DAG_DEFAULTS,
)
def tdx_clear_failed_actions():
    @task
    def clear_failed(**context) -> dict:
        """Delete the failed rows so the queue tries those actions again."""
        return runs.clear_failed(context)

    clear_failed()


tdx_clear_failed_actions()
