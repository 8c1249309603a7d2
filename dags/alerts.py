"""
### Alerts

Every five minutes (`TICKETFLOW_SCHEDULE_ALERTS`), checks what operators must hear about, as of the run's
`data_interval_end`: task runs that failed for good (recorded by every task's
failure notifier), dead-lettered email, the outbox not sending
(`TICKETFLOW_ALERT_OUTBOX_STALLED_MINUTES`, 15), failed TDX actions, parked
recurring templates, and tickets without a task after
`TICKETFLOW_ALERT_UNALLOCATED_MINUTES` (60).

A condition raises at most one alert per `TICKETFLOW_ALERT_PERIOD_MINUTES`
(60), listing everything new since its last alert. Alerts are queued in the
email outbox for `TICKETFLOW_ALERT_EMAILS` (default `TICKETFLOW_ADMIN_EMAIL`),
posted as Slack-compatible JSON to the `alerts_webhook` connection when it
exists, and logged at ERROR here. The outbox's own alerts do not wait for the
outbox: the webhook, this log and the dashboard carry them.

Audit: `automation_runs` (processed: open items; changed: alerts raised and posted).
"""

from airflow.sdk import dag, task

from ticketflow import alerts as alerting
from ticketflow.dagkit import DAG_DEFAULTS, EVERY_FIVE_MINUTES, audited_batches, schedule_for


@dag(
    dag_id="alerts",
    schedule=schedule_for("alerts", EVERY_FIVE_MINUTES),
    tags=["ticketflow", "alerts", "operations"],
    doc_md=__doc__,
    **DAG_DEFAULTS,
)
def alerts():
    @task
    def check_alert_conditions(**context) -> dict:
        """Every condition as of the run's instant; new alerts queued, posted and logged."""
        return audited_batches(context, alerting.run_alerts_task)

    check_alert_conditions()


alerts()
