"""The failure notifier every Ticketflow task has as its `on_failure_callback`."""

from __future__ import annotations

from contextlib import closing
from typing import Any

from airflow.sdk.bases.notifier import BaseNotifier


def _error_text(error: Any) -> str:
    if error is None:
        return "no error given (killed, or timed out)"
    return error if isinstance(error, str) else f"{type(error).__name__}: {error}"


class FailedTaskNotifier(BaseNotifier):
    """Runs once a task has failed for good (its retries spent, or failed without retrying).

    It closes the run's audit row when the task died without closing it, and
    records the failure for the `alerts` DAG, which mails one summary per
    period through the outbox. It sends nothing itself: a failure during an
    SMTP outage is kept in PostgreSQL, and a hundred failures make one message.
    """

    def notify(self, context: Any) -> None:
        from ticketflow import alerts
        from ticketflow.audit import mark_failed
        from ticketflow.dagkit import app_connection

        dag_run, ti = context["dag_run"], context.get("ti")
        error = _error_text(context.get("exception"))
        map_index = getattr(ti, "map_index", -1)
        with closing(app_connection()) as conn:
            mark_failed(conn, dag_run.dag_id, dag_run.run_id, f"task failed: {error}")
            alerts.record_failed_task(
                conn, dag_id=dag_run.dag_id, run_id=dag_run.run_id,
                task_id=getattr(ti, "task_id", None) or "unknown task",
                map_index=map_index if isinstance(map_index, int) else -1,
                try_number=getattr(ti, "try_number", None) or 0, error=error)
        self.log.info("recorded the failure of %s %s for the alerts DAG", dag_run.dag_id, dag_run.run_id)
