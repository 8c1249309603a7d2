"""The TDX report queue: which tickets have work, and doing it exactly once per ticket and action id.

The seed checked the log, acted, then wrote the log, so a crash in between
repeated the action. Here every action is

1. planned with read calls only;
2. claimed: a `pending` row with the plan, committed on its own;
3. applied in TDX;
4. settled: `completed`, `skipped` (nothing to do) or `failed` (TDX refused it,
   with its answer), committed on its own.

A `pending` row found later was left by a run that died between 2 and 4: the
ticket is looked at (`Action.already_done`) before anything is done again.
While a worker handles a ticket it holds a session advisory lock on it, so two
overlapping runs never work on the same ticket, and a dead worker's lock goes
with its connection.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from ticketflow import queries
from ticketflow.settings import TDX_MAX_ID
from ticketflow.tdx.actions import Action, Plan, Step, SummaryCommentAction, TicketView, build_step, build_summary
from ticketflow.tdx.client import TdxClient, TdxOutcomeUnknown, TdxRequestError, TdxUnavailable
from ticketflow.tdx.config import ConfigError, QueueConfig

log = logging.getLogger(__name__)

#: First key of the two-key advisory locks the queue takes per ticket.
TICKET_LOCK_CLASS = 0x7464

#: How often a write whose answer was lost is looked for, then tried again.
OUTCOME_CHECKS = 3


@dataclass
class TicketOutcome:
    """What happened to one ticket: one entry per action looked at."""

    ticket_id: int
    actions: list[dict[str, Any]] = field(default_factory=list)
    busy: bool = False

    def count(self, status: str) -> int:
        return sum(1 for a in self.actions if a["status"] == status)




def report_rows(report: dict, columns: Iterable[str]) -> dict[int, dict[str, Any]]:
    """Ticket id -> the row's values of `columns`, from `reports/{id}?withData=true`.

    Rows whose TicketID is not a TDX ticket id (a positive 32-bit integer) are
    skipped with a log line, so one bad row cannot fail the run; a condition
    column the report does not show is a configuration error.
    """
    shown = {c.get("ColumnName") for c in report.get("DisplayedColumns") or []}
    wanted = set(columns)
    if missing := sorted(wanted - shown - {"TicketID"}):
        raise ConfigError(f"report {report.get('ID')} has no column {', '.join(missing)} used by a 'when' "
                          f"condition; its columns are {', '.join(sorted(c for c in shown if c))}")
    rows: dict[int, dict[str, Any]] = {}
    for number, row in enumerate(report.get("DataRows") or [], 1):
        raw = row.get("TicketID") if isinstance(row, dict) else None
        ticket_id = _tdx_ticket_id(raw)
        if ticket_id is None:
            log.warning("report %s row %d skipped: TicketID %r is not a TDX ticket id (1..%d)", report.get("ID"),
                        number, str(raw)[:50], TDX_MAX_ID)
            continue
        rows[ticket_id] = {column: row.get(column) for column in wanted}
    return rows


def _tdx_ticket_id(raw: Any) -> int | None:
    """A report's TicketID as an int when it is one TDX could have issued (an int or digits, 1..2^31-1)."""
    if isinstance(raw, str) and raw.strip().isdigit() and len(raw.strip()) <= len(str(TDX_MAX_ID)):
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= TDX_MAX_ID:
        return None
    return raw


def outstanding(conn: psycopg.Connection, rows: dict[int, dict[str, Any]], config: QueueConfig) -> list[int]:
    """The tickets with work left, in one query over the whole report."""
    pairs = [(ticket_id, spec.action_id) for ticket_id, row in rows.items()
             for spec in config.steps if spec.applies_to(row)]
    summary = config.summary
    found = conn.execute(queries.load("tdx/outstanding"), {
        "ticket_ids": [p[0] for p in pairs], "action_ids": [p[1] for p in pairs],
        "report_ticket_ids": list(rows), "summarize": summary is not None,
        "summary_only_with_lines": bool(summary and summary.options["skip_if_empty"]),
    }).fetchall()
    return [ticket_id for (ticket_id,) in found]


def in_batches(ticket_ids: list[int], size: int, max_batches: int) -> list[list[int]]:
    """Batches of `size`, larger if need be: Airflow refuses to map over more than `max_batches` (max_map_length)."""
    size = max(size, -(-len(ticket_ids) // max_batches))
    return [ticket_ids[i:i + size] for i in range(0, len(ticket_ids), size)]


# --- the action log, one short transaction per statement (the connection is in autocommit) ---

def _log_rows(conn: psycopg.Connection, ticket_id: int) -> dict[str, tuple[str, str, dict]]:
    found = conn.execute("SELECT action_id, action_type, status, metadata FROM meta.daemon_action_log"
                         " WHERE ticket_id = %s", (ticket_id,)).fetchall()
    return {action_id: (action_type, status, metadata) for action_id, action_type, status, metadata in found}


def _plan_metadata(plan: Plan) -> dict[str, Any]:
    return {"plan": {"description": plan.description, "detail": plan.detail, "summary_line": plan.summary_line}}


def _stored_plan(metadata: dict) -> Plan:
    stored = metadata.get("plan") or {}
    return Plan(True, stored.get("description", ""), stored.get("detail") or {}, stored.get("summary_line"))


def _claim(conn, ticket_id: int, action_type: str, action_id: str, action_hash: str, status: str,
           metadata: dict, run_id: str, error: str | None = None) -> bool:
    """Insert the action's row; False when a row for (ticket, action id) already exists."""
    inserted = conn.execute(
        "INSERT INTO meta.daemon_action_log (ticket_id, action_type, action_id, action_hash, status,"
        " executed_at, claimed_at, error_message, metadata, dag_run_id)"
        " VALUES (%s, %s, %s, %s, %s, now(), now(), %s, %s, %s)"
        " ON CONFLICT (ticket_id, action_id) DO NOTHING RETURNING log_id",
        (ticket_id, action_type, action_id, action_hash, status, error, Jsonb(metadata), run_id)).fetchone()
    return inserted is not None


def _settle(conn, ticket_id: int, action_id: str, status: str, metadata: dict, error: str | None = None) -> None:
    conn.execute(
        "UPDATE meta.daemon_action_log SET status = %s, executed_at = now(), error_message = %s,"
        " metadata = metadata || %s WHERE ticket_id = %s AND action_id = %s AND status = 'pending'",
        (status, error, Jsonb(metadata), ticket_id, action_id))


def _try_lock(conn, ticket_id: int) -> bool:
    return conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (TICKET_LOCK_CLASS, ticket_id)).fetchone()[0]


def _unlock(conn, ticket_id: int) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s, %s)", (TICKET_LOCK_CLASS, ticket_id))


# --- doing one action ---

def _apply_once(view: TicketView, action: Action, plan: Plan) -> bool:
    """Apply the plan; when its outcome is unknown, look before trying again. True if it was found done.

    After a 5xx TDX has finished with the request, so a look settles it. After
    a timeout or a dropped connection TDX may still be working on it: the row
    stays `pending` and the next try (or run) looks, later.
    """
    for _check in range(OUTCOME_CHECKS):
        try:
            action.apply(view, plan)
            return False
        except TdxOutcomeUnknown as exc:
            log.warning("ticket %s, %s: outcome unknown (%s); looking at the ticket", view.ticket_id,
                        plan.detail.get("action_id", action.action_id), exc)
            if action.already_done(view, plan):
                return True
            if not exc.answered:
                raise TdxUnavailable(f"ticket {view.ticket_id}: no answer from TDX and no sign of the action yet;"
                                     " left pending for the next try to look again") from None
    raise TdxUnavailable(f"ticket {view.ticket_id}: TDX failed {OUTCOME_CHECKS} times in a row")


def _finish(conn, view: TicketView, action: Action, action_id: str, plan: Plan, reconciling: bool,
            outcome: TicketOutcome) -> None:
    """Apply a claimed plan (or find it applied) and settle its row."""
    try:
        found_done = (reconciling and action.already_done(view, plan)) or _apply_once(view, action, plan)
    except TdxRequestError as exc:
        _settle(conn, view.ticket_id, action_id, "failed", {}, str(exc))
        log.error("ticket %s, %s failed: %s", view.ticket_id, action_id, exc)
        outcome.actions.append({"action_id": action_id, "status": "failed", "description": str(exc)})
        return
    settled = {"description": plan.description, "reconciled": found_done}
    if plan.summary_line:
        settled["summary_line"] = plan.summary_line
    _settle(conn, view.ticket_id, action_id, "completed", settled)
    view.reread()
    outcome.actions.append({"action_id": action_id, "status": "completed", "description": plan.description,
                            "reconciled": found_done})


def _step(conn, view: TicketView, action: Step, existing: tuple | None, run_id: str,
          dry_run: bool, outcome: TicketOutcome) -> None:
    spec = action.spec
    if existing and existing[1] != "pending":
        return
    if existing:  # left pending by an interrupted run: look before acting
        if dry_run:
            outcome.actions.append({"action_id": spec.action_id, "status": "would_check",
                                    "description": "interrupted earlier: look at the ticket, then finish"})
            return
        _finish(conn, view, action, spec.action_id, _stored_plan(existing[2]), True, outcome)
        return
    try:
        plan = action.plan(view)
    except TdxRequestError as exc:
        if not dry_run:
            _claim(conn, view.ticket_id, spec.type, spec.action_id, spec.action_hash, "failed", {}, run_id, str(exc))
        outcome.actions.append({"action_id": spec.action_id, "status": "failed", "description": str(exc)})
        return
    if dry_run:
        outcome.actions.append({"action_id": spec.action_id, "status": "would_do" if plan.needed else "would_skip",
                                "description": plan.description, "summary_line": plan.summary_line,
                                **plan.detail})
        return
    if not plan.needed:
        if _claim(conn, view.ticket_id, spec.type, spec.action_id, spec.action_hash, "skipped",
                  {"description": plan.description, **plan.detail}, run_id):
            outcome.actions.append({"action_id": spec.action_id, "status": "skipped",
                                    "description": plan.description})
        return
    if _claim(conn, view.ticket_id, spec.type, spec.action_id, spec.action_hash, "pending",
              _plan_metadata(plan), run_id):
        _finish(conn, view, action, spec.action_id, plan, False, outcome)


def _summarize(conn, view: TicketView, summary: SummaryCommentAction, pending: dict[str, tuple], run_id: str,
               dry_run: bool, planned_lines: list[str], outcome: TicketOutcome) -> None:
    """Finish an interrupted summary, then post one covering every settled action not yet reported."""
    for action_id, (_, _, metadata) in pending.items():
        if not dry_run:
            _finish(conn, view, summary, action_id, _stored_plan(metadata), True, outcome)
    uncovered = conn.execute(queries.load("tdx/uncovered"), {
        "ticket_id": view.ticket_id, "only_with_lines": summary.options["skip_if_empty"]}).fetchall()
    covers = [action_id for action_id, _ in uncovered]
    plan = summary.summary([line for _, line in uncovered if line] + planned_lines)
    if not plan.needed:
        return
    content = json.dumps({"options": summary.options, "covers": covers}, sort_keys=True)
    action_hash = hashlib.sha256(content.encode()).hexdigest()
    action_id = f"summary_comment:{action_hash[:12]}:{summary.spec.version}"
    plan.detail["action_id"] = action_id
    if dry_run:
        outcome.actions.append({"action_id": action_id, "status": "would_do", "description": plan.description,
                                "text": plan.detail["text"]})
        return
    metadata = {**_plan_metadata(plan), "covers": covers}
    if _claim(conn, view.ticket_id, "summary_comment", action_id, action_hash, "pending", metadata, run_id):
        _finish(conn, view, summary, action_id, plan, False, outcome)


def _settle_orphans(conn, ticket_id: int, orphans: dict[str, tuple], outcome: TicketOutcome) -> None:
    """Pending rows of actions no longer configured: nothing can finish them, say so."""
    for action_id in orphans:
        message = ("left pending by an interrupted run and no longer configured: look at the ticket, then "
                   "clear this failed action if it must run again")
        _settle(conn, ticket_id, action_id, "failed", {}, message)
        outcome.actions.append({"action_id": action_id, "status": "failed", "description": message})


def process_ticket(conn: psycopg.Connection, client: TdxClient, config: QueueConfig, ticket_id: int,
                   row: dict[str, Any] | None, run_id: str, dry_run: bool = False) -> TicketOutcome:
    """Run every due action of the queue on one ticket, in order, each exactly once.

    `row` is the ticket's report row, or None when the ticket has left the report but
    an interrupted run left one of its actions pending: then only pending actions
    are finished (and summarized), nothing new is started on it."""
    outcome = TicketOutcome(ticket_id)
    if not dry_run and not _try_lock(conn, ticket_id):
        outcome.busy = True  # another run is working on this ticket right now
        return outcome
    try:
        view = TicketView(client, ticket_id, row or {})
        logged = _log_rows(conn, ticket_id)
        # A pending action is finished even if its condition no longer matches (it may be why).
        steps = [build_step(spec) for spec in config.steps
                 if (row is not None and spec.applies_to(row))
                 or logged.get(spec.action_id, ("", ""))[1] == "pending"]
        for action in steps:
            _step(conn, view, action, logged.get(action.action_id), run_id, dry_run, outcome)
        known = {spec.action_id for spec in config.steps}
        pending = {a: r for a, r in logged.items() if r[1] == "pending" and a not in known}
        pending_summaries = {a: r for a, r in pending.items() if r[0] == "summary_comment"}
        if config.summary:
            planned = [a.get("summary_line") for a in outcome.actions if a["status"] == "would_do"] if dry_run else []
            _summarize(conn, view, build_summary(config.summary), pending_summaries, run_id, dry_run,
                       [line for line in planned if line], outcome)
            pending = {a: r for a, r in pending.items() if a not in pending_summaries}
        if not dry_run:
            _settle_orphans(conn, ticket_id, pending, outcome)
    finally:
        if not dry_run:
            _unlock(conn, ticket_id)
    return outcome


def process_tickets(conn: psycopg.Connection, client: TdxClient, config: QueueConfig,
                    rows: dict[int, dict[str, Any] | None], run_id: str, dry_run: bool = False,
                    on_ticket: Callable[[TicketOutcome], None] = lambda outcome: None) -> list[TicketOutcome]:
    """`process_ticket` over a batch; `on_ticket` sees each outcome as soon as it is known."""
    outcomes = []
    for ticket_id, row in rows.items():
        outcome = process_ticket(conn, client, config, ticket_id, row, run_id, dry_run)
        on_ticket(outcome)
        outcomes.append(outcome)
    return outcomes
