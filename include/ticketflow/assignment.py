"""Automatic task creation: every ticket waiting for a task gets one, with users of its step's role.

A batch matches workflows and first steps for all waiting tickets in one
statement, asks TTS once per role, then gives each ticket its own
transaction: lock the ticket (SKIP LOCKED: a concurrent batch has it), take
the next users of the role from the durable round-robin (under the role's
advisory lock, so two batches never hand out the same slot), create the task
(one per ticket, unique) and mark the ticket allocated. All or nothing. A
ticket that cannot be served keeps the reason in `allocation_error` and is
retried with backoff; it never blocks the others.

A backlog is shared out by role (`plan_units`): each unit is one mapped task
that serves the tickets of its roles, so units run on different workers at
once. A role belongs to one unit per run, and its rotation is serialised by
its advisory lock whatever runs it, so the round-robin stays exact.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable

import psycopg

from ticketflow import queries
from ticketflow.audit import AuditedRun
from ticketflow.tts import TtsError

BATCH_SIZE = 500
#: A unit is worth a task from two batches of tickets on: its own process on a worker costs about what a
#: batch of assignment does.
UNIT_MIN_TICKETS = 2 * BATCH_SIZE
log = logging.getLogger(__name__)


def _users_by_role(roles: set[str], users_for_role: Callable[[str], list[int]]) -> dict[str, list[int] | str]:
    """One TTS call per role: the users, or why there are none."""
    found: dict[str, list[int] | str] = {}
    for role in sorted(roles):
        try:
            users = users_for_role(role)
            found[role] = users if users else f"no users for role {role!r}"
        except TtsError as exc:
            found[role] = str(exc)
    return found


class NoTaskPossible(Exception):
    """The ticket cannot get a task now; the reason is the message."""


def allocate_ticket(conn: psycopg.Connection, ticket_id: int, users_for_role: Callable[[str], list[int]],
                    max_assignments: int) -> bool:
    """One ticket, now (the manual "create task for ticket"), all or nothing: True when its task was created,
    False when a batch is serving it right now. A ticket that cannot get a task raises NoTaskPossible, and TTS
    trouble raises TtsError; either way nothing is written, not even the reason (the DAG records that)."""
    with conn.transaction():
        conn.execute("UPDATE tickets SET next_allocation_at = NULL WHERE id = %s AND NOT is_task_allocated",
                     (ticket_id,))
        matched = conn.execute(queries.load("assignment/match_pending"),
                               {"limit": 1, "ticket_id": ticket_id, "roles": None}).fetchone()
        if matched is None:
            return False
        _, workflow_id, step_id, role = matched
        users, reason = [], _why_no_task(workflow_id, step_id, None)
        if reason is None:
            users = users_for_role(role)
            reason = None if users else f"no users for role {role!r}"
        if reason:
            raise NoTaskPossible(reason)
        return _allocate_one(conn, ticket_id, workflow_id, step_id, role, users, max_assignments) == "created"


def pick_users(conn: psycopg.Connection, role: str, users: list[int], max_assignments: int) -> list[int]:
    """The next users of `role` in the durable round-robin; their turn is taken in the caller's transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('role_rotation:' || %s))", (role,))
    chosen = [user for (user,) in conn.execute(queries.load("assignment/next_users"),
                                                {"role": role, "users": users, "limit": max_assignments})]
    conn.execute(queries.load("assignment/take_turn"), {"role": role, "users": chosen})
    return chosen


def _why_no_task(workflow_id, step_id, users: list[int] | str | None) -> str | None:
    """Why a matched ticket cannot get a task (`users` may be the reason TTS gave none), or None."""
    return ("no published, deployed workflow matches the ticket" if workflow_id is None
            else "the matching workflow has no steps" if step_id is None
            else users if isinstance(users, str) else None)


def _allocate_one(conn: psycopg.Connection, ticket_id: int, workflow_id, step_id, role, users, max_assignments: int):
    """In the caller's transaction: the ticket's task, or its failure. Returns 'created', 'failed' or 'taken'."""
    if conn.execute("SELECT 1 FROM tickets WHERE id = %s AND NOT is_task_allocated FOR UPDATE SKIP LOCKED",
                    (ticket_id,)).fetchone() is None:
        return "taken"
    error = _why_no_task(workflow_id, step_id, users)
    if error:
        conn.execute(queries.load("assignment/record_failure"), {"ticket_id": ticket_id, "error": error})
        log.warning("ticket %s has no task yet: %s", ticket_id, error)
        return "failed"
    chosen = pick_users(conn, role, users, max_assignments)
    conn.execute(queries.load("assignment/create_task"),
                 {"ticket_id": ticket_id, "workflow_id": workflow_id, "step_id": step_id, "role": role,
                  "users": chosen})
    return "created"


def _share_out(waiting: list[tuple[str | None, int]], count: int) -> list[tuple[int, list[str | None]]]:
    """Roles into `count` units, largest role first into the least loaded unit: (tickets, roles), largest first."""
    units: list[tuple[int, int, list[str | None]]] = [(0, index, []) for index in range(count)]
    for role, tickets in sorted(waiting, key=lambda row: (-row[1], row[0] is None, row[0] or "")):
        load, index, roles = heapq.heappop(units)
        heapq.heappush(units, (load + tickets, index, [*roles, role]))
    return [(load, roles) for load, _, roles in sorted(units, key=lambda unit: (-unit[0], unit[1]))]


def _label(roles: list[str | None], tickets: int) -> str:
    more = f" +{len(roles) - 1} role{'s' if len(roles) > 2 else ''}" if len(roles) > 1 else ""
    return f"{roles[0] or 'no role'}{more}: {tickets} ticket{'s' if tickets != 1 else ''}"


def plan_units(conn: psycopg.Connection, max_units: int, min_tickets: int = UNIT_MIN_TICKETS) -> list[dict]:
    """The waiting tickets' roles shared out into units of work, largest first, for one mapped task each.

    At most `max_units`, one per `min_tickets` waiting (a single new ticket is
    one unit, as it was one task before) and one per role; of those counts, the
    fewest that finish as soon as the most would (a role is never split: its
    rotation is serial), so no worker slot starts a process for a sliver. A
    `None` role stands for the tickets without one (no workflow, no steps),
    which only get their reason recorded. `part`/`parts` let the units close
    the run's audit row together.
    """
    waiting = conn.execute(f"SELECT role_name, count(*) FROM ({queries.load('assignment/match_pending')}) AS w"
                           " GROUP BY role_name", {"limit": None, "ticket_id": None, "roles": None}).fetchall()
    if not waiting:
        return []
    most = max(1, min(max_units, len(waiting), sum(tickets for _, tickets in waiting) // min_tickets))
    fastest = _share_out(waiting, most)[0][0]
    units = next(shares for count in range(1, most + 1) if (shares := _share_out(waiting, count))[0][0] <= fastest)
    return [{"part": part, "parts": len(units), "roles": roles, "tickets": load, "label": _label(roles, load)}
            for part, (load, roles) in enumerate(units)]


def assign_waiting_tickets(run: AuditedRun, users_for_role: Callable[[str], list[int]], max_assignments: int,
                           batch_size: int = BATCH_SIZE, roles: list[str | None] | None = None) -> None:
    """Serve every ticket waiting for a task (of `roles` only, when given), batch after batch, until none is due."""
    conn = run.conn
    while True:
        pending = conn.execute(queries.load("assignment/match_pending"),
                               {"limit": batch_size, "ticket_id": None, "roles": roles}).fetchall()
        if not pending:
            return
        users = _users_by_role({role for *_, role in pending if role}, users_for_role)
        handled = 0
        for ticket_id, workflow_id, step_id, role in pending:
            with run.unit() as outcome:
                result = _allocate_one(conn, ticket_id, workflow_id, step_id, role, users.get(role),
                                       max_assignments)
                outcome.processed = int(result != "taken")
                outcome.changed = int(result == "created")
                outcome.details = {result: 1, "tts_calls": 0}
                handled += result != "taken"
        with run.unit() as outcome:
            outcome.details = {"tts_calls": len(users)}
        if len(pending) < batch_size or handled == 0:
            return  # the rest is being served by a concurrent batch
