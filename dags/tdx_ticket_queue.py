"""
### TDX ticket queue

Replaces the seed's `ticket-queue-daemon`. Every five minutes
(`TICKETFLOW_SCHEDULE_TDX_TICKET_QUEUE`, the seed's `--interval`): read the TDX
report (`report_id`), find the tickets that still have work in one query,
then run the configured actions (`config/tdx_actions.yaml`, or the file
`TICKETFLOW_TDX_ACTIONS` names) on each of them in mapped batches, exactly
once per ticket and action id: each action is claimed (`pending`) before TDX
is called and settled after; a run that died in between is reconciled by
looking at the ticket first. Batches share the `tdx_api` pool, so many
workers together stay under TDX's rate limits.

**Dry run.** Scheduled runs act. A manual run (the trigger form, REST, CLI)
is a dry run unless `dry_run` is false: read calls only, nothing written to
TDX or the action log, and the plan per ticket in the log and in the XCom of
`finish`.

Action log: `meta.daemon_action_log`, views `meta.daemon_recent_activity` and
`meta.daemon_activity_summary`; `tdx_clear_failed_actions` clears failures.
"""

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task

from ticketflow import settings
from ticketflow.dagkit import DAG_DEFAULTS, EVERY_FIVE_MINUTES, schedule_for
from ticketflow.tdx import runs


@dag(
    dag_id="tdx_ticket_queue",
    schedule=schedule_for("tdx_ticket_queue", EVERY_FIVE_MINUTES),
    tags=["ticketflow", "tdx"],
    doc_md=__doc__,
    params={
        "report_id": Param(settings.tdx_report_id(), type="integer", minimum=1, maximum=settings.TDX_MAX_ID,
                           description="The TDX report whose tickets get the actions."),
        "dry_run": Param(True, type="boolean",
                         description="Only say what would be done (read calls only). Scheduled runs act"
                                     " unless TICKETFLOW_TDX_DRY_RUN is set."),
    },
    **DAG_DEFAULTS,
)
def tdx_ticket_queue():
    @task
    def find_tickets_with_work(**context) -> list[dict]:
        """One report call and one query: the tickets that still have work, in batches."""
        return runs.find_tickets_with_work(context)

    @task(pool=settings.TDX_POOL, map_index_template="{{ batch_label }}")
    def process_batch(batch: dict, **context) -> dict:
        """Every due action on every ticket of the batch, each exactly once."""
        get_current_context()["batch_label"] = batch["label"]
        return runs.process_batch(context, batch)

    @task(trigger_rule=TriggerRule.NONE_FAILED)
    def finish(batch_results: list, **context) -> dict:
        """Close the run's audit row; totals (and a dry run's plan) for XCom."""
        return runs.finish(context, list(batch_results))

    finish(process_batch.expand(batch=find_tickets_with_work()))


tdx_ticket_queue()
