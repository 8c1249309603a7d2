"""The task lifecycle: what the seed's Task model methods and REST actions did, on PostgreSQL.

Every change locks the task row and happens in one transaction; an invalid
request raises `TaskError` (or `TaskNotFound`) and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import psycopg
from psycopg.rows import dict_row

from ticketflow import limits
from ticketflow.assignment import NoTaskPossible, allocate_ticket, pick_users
from ticketflow.db import one

TASK_STATUSES = ("pending", "in_progress", "completed", "on_hold", "cancelled")
USER_STATUSES = ("assigned", "in_progress", "completed", "on_hold")
CLOSED = ("completed", "cancelled")


class TaskError(ValueError):
    """A request the task's state does not allow; nothing was changed."""


class TaskNotFound(TaskError, LookupError):
    pass


_SELECT = """
SELECT k.task_id, k.ticket_id, k.workflow_id, k.current_step_id, k.users, k.status,
       k.created_at, k.updated_at, k.fetched_at, k.completed_at,
       t.subject AS ticket_subject, w.name AS workflow_name,
       s.name AS current_step_name, s.role_name AS current_step_role,
       jsonb_array_length(k.users) AS assigned_users_count
FROM tasks k
JOIN tickets t ON t.id = k.ticket_id
JOIN workflows w ON w.id = k.workflow_id
LEFT JOIN steps s ON s.id = k.current_step_id
"""


_FILTER = """
WHERE (%(status)s::text IS NULL OR k.status = %(status)s)
  AND (%(ticket)s::bigint IS NULL OR k.ticket_id = %(ticket)s)
  AND (%(workflow)s::bigint IS NULL OR k.workflow_id = %(workflow)s)
"""


def list_tasks(conn: psycopg.Connection, *, status: str | None = None, ticket_id: int | None = None,
               workflow_id: int | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    """Tasks with the seed serializer's fields, newest first, filtered and paginated; and how many match."""
    if status is not None and status not in TASK_STATUSES:
        raise TaskError(f"status must be one of {', '.join(TASK_STATUSES)}, got {status!r}")
    if not 1 <= limit <= 500 or offset < 0:
        raise TaskError("limit must be 1..500 and offset 0 or more")
    filters = {"status": status, "ticket": ticket_id, "workflow": workflow_id}
    with conn.cursor(row_factory=dict_row) as cur:
        total = one(cur.execute("SELECT count(*) AS n FROM tasks k" + _FILTER, filters))["n"]
        rows = cur.execute(_SELECT + _FILTER + " ORDER BY k.task_id DESC LIMIT %(limit)s OFFSET %(offset)s",
                           {**filters, "limit": limit, "offset": offset}).fetchall()
    return rows, total


def get_task(conn: psycopg.Connection, task_id: int) -> dict:
    with conn.cursor(row_factory=dict_row) as cur:
        task = cur.execute(_SELECT + " WHERE k.task_id = %s", (task_id,)).fetchone()
    if task is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    return task


def _locked(conn: psycopg.Connection, task_id: int) -> tuple[list[dict], str, int | None, int]:
    row = conn.execute("SELECT users, status, current_step_id, workflow_id FROM tasks WHERE task_id = %s FOR UPDATE",
                       (task_id,)).fetchone()
    if row is None:
        raise TaskNotFound(f"task {task_id} does not exist")
    return row


def _save(conn: psycopg.Connection, task_id: int, **columns) -> None:
    assignments = ", ".join(f"{name} = %({name})s" for name in columns)
    conn.execute(f"UPDATE tasks SET {assignments}, updated_at = clock_timestamp() WHERE task_id = %(task_id)s",
                 {**columns, "task_id": task_id})


def _new_assignments(conn: psycopg.Connection, user_ids: list[int], role: str | None, status: str = "assigned",
                     **profile: str | None) -> list[dict]:
    """The seed's assignment objects, stamped with the database's clock (as the assignment DAG stamps them).

    `profile` holds the optional `username` and `email` of the seed's UserAssignmentSerializer.
    """
    stamp = one(conn.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                             ))[0]
    extra = {key: value for key, value in profile.items() if value is not None}
    return [{"userID": user_id, "status": status, "assigned_on": stamp, "role": role, **extra}
            for user_id in user_ids]


def create_task_for_ticket(conn: psycopg.Connection, ticket_id: int, users_for_role: Callable[[str], list[int]],
                           max_assignments: int) -> dict:
    """The manual "create task for ticket": the same matching and round-robin as the DAG, now.

    A refusal changes nothing; TTS trouble raises TtsError (the API's 502)."""
    ticket = conn.execute("SELECT is_task_allocated, is_recurring, archived FROM tickets WHERE id = %s",
                          (ticket_id,)).fetchone()
    if ticket is None:
        raise TaskNotFound(f"ticket {ticket_id} does not exist")
    allocated, template, archived = ticket
    if allocated:
        raise TaskError(f"ticket {ticket_id} already has a task")
    if template:
        raise TaskError(f"ticket {ticket_id} is a recurring template: the tickets it generates get the tasks")
    if archived:
        raise TaskError(f"ticket {ticket_id} is archived")
    try:
        if not allocate_ticket(conn, ticket_id, users_for_role, max_assignments):
            raise TaskError(f"no task for ticket {ticket_id}: it is being assigned right now")
    except NoTaskPossible as exc:
        raise TaskError(f"no task for ticket {ticket_id}: {exc}") from None
    task_id = one(conn.execute("SELECT task_id FROM tasks WHERE ticket_id = %s", (ticket_id,)))[0]
    return get_task(conn, task_id)


def assign_user(conn: psycopg.Connection, task_id: int, user_id: int, role: str | None = None,
                username: str | None = None, email: str | None = None, status: str = "assigned") -> dict:
    """Add a user to a task (the seed's UserAssignmentSerializer); one who starts `in_progress` starts the task."""
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1:
        raise TaskError(f"userID must be a positive integer, got {user_id!r}")
    if status not in USER_STATUSES:
        raise TaskError(f"user status must be one of {', '.join(USER_STATUSES)}, got {status!r}")
    with conn.transaction():
        users, task_status, _, _ = _locked(conn, task_id)
        if task_status in CLOSED:
            raise TaskError(f"task {task_id} is {task_status}: no user can be assigned")
        if any(u["userID"] == user_id for u in users):
            raise TaskError(f"user {user_id} is already assigned to task {task_id}")
        if len(users) >= limits.TASK_USERS:
            raise TaskError(f"task {task_id} already has {len(users)} users, the most a task may have")
        added = _new_assignments(conn, [user_id], role, status, username=username, email=email)
        _save(conn, task_id, users=json.dumps([*users, *added]), status=_started(task_status, status))
    return get_task(conn, task_id)


def _started(task_status: str, user_status: str) -> str:
    """A pending task goes in progress when one of its users does."""
    return "in_progress" if task_status == "pending" and user_status == "in_progress" else task_status


def update_user_status(conn: psycopg.Connection, task_id: int, user_id: int, status: str) -> dict:
    if status not in USER_STATUSES:
        raise TaskError(f"user status must be one of {', '.join(USER_STATUSES)}, got {status!r}")
    with conn.transaction():
        users, task_status, _, _ = _locked(conn, task_id)
        if task_status in CLOSED:
            raise TaskError(f"task {task_id} is {task_status}: its users cannot change")
        if not any(u["userID"] == user_id for u in users):
            raise TaskError(f"user {user_id} is not assigned to task {task_id}")
        users = [{**u, "status": status} if u["userID"] == user_id else u for u in users]
        _save(conn, task_id, users=json.dumps(users), status=_started(task_status, status))
    return get_task(conn, task_id)


def _complete(conn: psycopg.Connection, task_id: int, status: str) -> None:
    if status in CLOSED:
        raise TaskError(f"task {task_id} is {status}: it cannot be completed")
    conn.execute("UPDATE tasks SET status = 'completed', completed_at = clock_timestamp(),"
                 " updated_at = clock_timestamp() WHERE task_id = %s", (task_id,))
    # End logic: a workflow that ends with a notification tells the requester, through the outbox.
    conn.execute("""
        INSERT INTO email_outbox (dedup_key, template, recipient, context)
        SELECT 'task:' || k.task_id || ':completed', 'task_completed', t.requester_email,
               jsonb_build_object('ticket_id', t.id, 'ticket_subject', t.subject, 'workflow_name', w.name,
                                  'completed_at', k.completed_at)
        FROM tasks k JOIN tickets t ON t.id = k.ticket_id JOIN workflows w ON w.id = k.workflow_id
        WHERE k.task_id = %s AND w.end_logic = 'notification' AND t.requester_email IS NOT NULL
        ON CONFLICT (dedup_key) DO NOTHING
    """, (task_id,))


def complete_task(conn: psycopg.Connection, task_id: int) -> dict:
    with conn.transaction():
        _, status, _, _ = _locked(conn, task_id)
        _complete(conn, task_id, status)
    return get_task(conn, task_id)


def move_to_next_step(conn: psycopg.Connection, task_id: int, users_for_role: Callable[[str], list[int]],
                      max_assignments: int) -> dict:
    """The next step by step_order, with the next users of its role; after the last step, the task completes."""
    with conn.transaction():
        _, status, step_id, workflow_id = _locked(conn, task_id)
        if status in CLOSED:
            raise TaskError(f"task {task_id} is {status}: it cannot move on")
        following = conn.execute(
            "SELECT s.id, s.role_name FROM steps s WHERE s.workflow_id = %s AND s.step_order >"
            " coalesce((SELECT step_order FROM steps WHERE id = %s), -2147483648)"
            " ORDER BY s.step_order, s.id LIMIT 1", (workflow_id, step_id)).fetchone()
        if following is None:
            _complete(conn, task_id, status)
        else:
            next_step, role = following
            candidates = users_for_role(role)
            if not candidates:
                raise TaskError(f"no users for role {role!r}: task {task_id} stays on its step")
            users = _new_assignments(conn, pick_users(conn, role, candidates, max_assignments), role)
            _save(conn, task_id, current_step_id=next_step, users=json.dumps(users), status="in_progress")
    return get_task(conn, task_id)


def workflow_statistics(conn: psycopg.Connection) -> list[dict]:
    """Per workflow: tasks by status and the mean time to complete, in seconds."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("""
            SELECT w.id AS workflow_id, w.name AS workflow_name, count(k.task_id) AS total,
                   jsonb_build_object('pending', count(*) FILTER (WHERE k.status = 'pending'),
                                      'in_progress', count(*) FILTER (WHERE k.status = 'in_progress'),
                                      'completed', count(*) FILTER (WHERE k.status = 'completed'),
                                      'on_hold', count(*) FILTER (WHERE k.status = 'on_hold'),
                                      'cancelled', count(*) FILTER (WHERE k.status = 'cancelled')) AS by_status,
                   round(avg(extract(epoch FROM k.completed_at - k.created_at))
                         FILTER (WHERE k.status = 'completed')::numeric, 1)::float AS mean_seconds_to_complete
            FROM workflows w LEFT JOIN tasks k ON k.workflow_id = w.id
            GROUP BY w.id, w.name ORDER BY w.id
        """).fetchall()
