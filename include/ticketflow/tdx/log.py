"""Reading and tending the action log: a ticket's history, statistics, clearing failures for a retry, and the
record of which tickets the reports still list (what retention needs before it forgets a ticket's log)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from ticketflow import queries

#: A ticket's sighting is refreshed at most this often (retention's ages are days; this keeps a large report
#: from rewriting every row every run). A read this much later than a ticket's last sighting did not list it.
SIGHTING_REFRESH = timedelta(hours=1)


def ticket_actions(conn: psycopg.Connection, ticket_id: int) -> list[dict[str, Any]]:
    """Every action recorded for one ticket, newest first (the seed's `get_ticket_actions`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT log_id, ticket_id, action_type, action_id, action_hash, status, executed_at, error_message,"
            " metadata, dag_run_id FROM meta.daemon_action_log WHERE ticket_id = %s"
            " ORDER BY executed_at DESC, action_id", (ticket_id,)).fetchall()


def action_stats(conn: psycopg.Connection) -> dict[str, Any]:
    """Totals by status and by action type (the seed's `get_action_stats`)."""
    with conn.cursor(row_factory=dict_row) as cur:
        summary = cur.execute("SELECT * FROM meta.daemon_activity_summary ORDER BY action_type, status").fetchall()
    by_status: dict[str, int] = {}
    by_type: dict[str, int] = {}
    for row in summary:
        by_status[row["status"]] = by_status.get(row["status"], 0) + row["actions"]
        by_type[row["action_type"]] = by_type.get(row["action_type"], 0) + row["actions"]
    return {"total_actions": sum(by_status.values()), "by_status": by_status, "by_type": by_type,
            "summary": summary}


def recent_activity(conn: psycopg.Connection, limit: int = 100) -> list[dict[str, Any]]:
    """The last 24 hours of actions, newest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM meta.daemon_recent_activity LIMIT %s", (limit,)).fetchall()


def clear_failed_actions(conn: psycopg.Connection, ticket_id: int | None = None, *, all_tickets: bool = False) -> int:
    """Forget failed actions so the next run tries them again: one ticket's, or (said explicitly) every ticket's.

    How many were cleared. Leaving the ticket out never means "all": an id lost on the way must not clear
    every ticket's failures.
    """
    if (ticket_id is None) != all_tickets:
        raise ValueError("give a ticket_id to clear one ticket's failed actions, or all_tickets=True for every"
                         " ticket's, not both")
    with conn.transaction():
        cleared = conn.execute(
            "DELETE FROM meta.daemon_action_log WHERE status = 'failed'"
            " AND (%(ticket_id)s::integer IS NULL OR ticket_id = %(ticket_id)s::integer)",
            {"ticket_id": ticket_id})
    return cleared.rowcount


def record_report_read(conn: psycopg.Connection, report_id: int, ticket_ids: list[int], read_at: datetime) -> None:
    """An acting run read `report_id` as of `read_at` (its due instant) and found `ticket_ids` in it."""
    with conn.transaction():
        conn.execute(queries.load("tdx/record_report_read"), {
            "report_id": report_id, "ticket_ids": ticket_ids, "read_at": read_at, "refresh": SIGHTING_REFRESH})
