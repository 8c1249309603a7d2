"""The task bodies of `tdx_ticket_queue` and `tdx_clear_failed_actions`.

A run is three steps: find the tickets with work (one report call, one query),
process them in mapped batches (the UI shows each batch; a failure retries one
batch, not the report), and close the run's audit row. Scheduled runs act;
any other run (trigger form, REST, CLI) is a dry run unless its `dry_run`
Param is false. With TICKETFLOW_TDX_DRY_RUN=true every run is a dry run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import closing
from typing import Any

from ticketflow import settings
from ticketflow.audit import AuditedRun, close_run, open_run
from ticketflow.dagkit import app_connection, run_window
from ticketflow.tdx.client import TdxClient, TdxSettings
from ticketflow.tdx.config import QueueConfig, load_config
from ticketflow.tdx.log import clear_failed_actions, record_report_read
from ticketflow.tdx.queue import TicketOutcome, in_batches, outstanding, process_tickets, report_rows
from ticketflow.tdx.tokens import DatabaseTokenStore

log = logging.getLogger(__name__)


def is_dry_run(context: Mapping[str, Any]) -> bool:
    """Only scheduled runs act unasked; every other run needs `dry_run=false`; TICKETFLOW_TDX_DRY_RUN stops all."""
    if settings.tdx_dry_run():
        return True
    return context["dag_run"].run_type != "scheduled" and bool(context["params"]["dry_run"])


def _client(conn) -> TdxClient:
    from airflow.sdk.log import mask_secret

    tdx = TdxSettings.from_connection(settings.TDX_CONN_ID)
    return TdxClient(tdx, token_store=DatabaseTokenStore(conn, tdx), on_secret=mask_secret)


def _config() -> QueueConfig:
    return load_config(settings.tdx_actions_file())


def find_tickets_with_work(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Open the audit row, read the report, and split the tickets that still have work into batches."""
    from airflow.sdk.configuration import conf

    window = run_window(context)
    report_id = int(context["params"]["report_id"])
    with closing(app_connection()) as conn:
        open_run(conn, window)
        config = _config()
        client = _client(conn)
        rows = report_rows(client.report(report_id), config.condition_columns)
        if not is_dry_run(context):  # what the report lists keeps its action log from retention
            record_report_read(conn, report_id, list(rows), window.due_at)
        todo = outstanding(conn, rows, config)
        with AuditedRun(conn, window).unit() as totals:
            # A list, not counters: each try (or Clear) that reads the report appends what it saw.
            totals.details = {"report_reads": [{"try": window.try_number, "report_tickets": len(rows),
                                                "tickets_with_work": len(todo)}]}
    log.info("report %s: %d tickets, %d with work (dry run: %s)", report_id, len(rows), len(todo),
             is_dry_run(context))
    return [{"label": f"tickets {batch[0]}..{batch[-1]} ({len(batch)})",
             "rows": {str(ticket_id): rows.get(ticket_id) for ticket_id in batch}}  # None: left the report
            for batch in in_batches(todo, config.batch_size, conf.getint("core", "max_map_length", fallback=1024))]


def _add_to_totals(run: AuditedRun, outcome: TicketOutcome) -> None:
    with run.unit() as totals:
        totals.processed = 1
        totals.changed = outcome.count("completed")
        totals.skipped = outcome.count("skipped") + outcome.busy
        totals.details = {"failed_actions": outcome.count("failed"), "busy_tickets": int(outcome.busy)}


def process_batch(context: Mapping[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """Every ticket of one batch; a dry run returns what would be done per ticket."""
    window = run_window(context)
    dry_run = is_dry_run(context)
    rows = {int(ticket_id): row for ticket_id, row in batch["rows"].items()}
    with closing(app_connection()) as conn:
        client = _client(conn)
        run = AuditedRun(conn, window)
        outcomes = process_tickets(conn, client, _config(), rows, window.run_id, dry_run,
                                   on_ticket=lambda outcome: _add_to_totals(run, outcome))
    result: dict[str, Any] = {
        "tickets": len(outcomes), "tdx_calls": sum(client.calls.values()), "throttled": client.throttled,
        **{status: sum(o.count(status) for o in outcomes) for status in ("completed", "skipped", "failed")},
        "busy": sum(o.busy for o in outcomes)}
    if dry_run:
        result["plan"] = [{"ticket_id": o.ticket_id, "actions": o.actions} for o in outcomes]
        for entry in result["plan"]:
            for action in entry["actions"]:
                log.info("dry run: ticket %s: %s %s: %s", entry["ticket_id"], action["status"],
                         action["action_id"], action["description"])
    return result


def finish(context: Mapping[str, Any], batch_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Close the audit row; the run's totals (and a dry run's whole plan) for XCom."""
    window = run_window(context)
    with closing(app_connection()) as conn:
        close_run(conn, window)
    totals: dict[str, Any] = {"dry_run": is_dry_run(context), "batches": len(batch_results)}
    for key in ("tickets", "completed", "skipped", "failed", "busy", "tdx_calls", "throttled"):
        totals[key] = sum(result.get(key, 0) for result in batch_results)
    if totals["dry_run"]:
        totals["plan"] = [entry for result in batch_results for entry in result.get("plan", [])]
    return totals


def clear_failed(context: Mapping[str, Any]) -> dict[str, Any]:
    """Forget failed actions, of the `ticket_id` given or (with `all` true) of every ticket, so the next queue
    run tries them again; neither or both fails the run at once, clearing nothing."""
    from airflow.sdk.exceptions import AirflowFailException

    ticket_id, all_tickets = context["params"].get("ticket_id"), bool(context["params"].get("all"))
    if (ticket_id is None) != all_tickets:
        raise AirflowFailException("give ticket_id to clear one ticket's failed actions, or all: true to clear"
                                   f" every ticket's (got ticket_id={ticket_id}, all={all_tickets}); nothing cleared")
    with closing(app_connection()) as conn:
        cleared = clear_failed_actions(conn, ticket_id, all_tickets=all_tickets)
    log.info("cleared %d failed TDX actions (%s)", cleared, "all tickets" if all_tickets else f"ticket {ticket_id}")
    return {"cleared": cleared, "ticket_id": ticket_id}
