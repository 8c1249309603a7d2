"""The task lifecycle: what the seed's Task model methods and REST actions did, on PostgreSQL.

Every change locks the task row and happens in one transaction; an invalid
request raises `TaskError` (or `TaskNotFound`) and changes nothing. Which
status may follow which is the database's rule (migration 0015), whoever
writes; its refusals come back here as `TaskError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from ticketflow import limits
from ticketflow.assignment import NoTaskPossible, allocate_ticket, pick_users
from ticketflow.db import one

TASK_STATUSES = ("pending", "in_progress", "completed", "on_hold", "cancelled")
USER_STATUSES = ("assigned", "in_progress", "completed", "on_hold")
CLOSED = ("completed", "cancelled")
#: What an edit (the seed's PATCH) may change.
EDITABLE = ("status", "status_reason", "current_step_id", "users", "fetched_at")


class TaskError(ValueError):
    """A request the task's state does not allow; nothing was changed."""


class TaskNotFound(TaskError, LookupError):
    pass


_SELECT = """
SELECT k.task_id, k.ticket_id, k.workflow_id, k.current_step_id, k.users, k.status, k.status_reason,
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


#: The database's refusals of a task change, as the API says them (409); `{task_id}`, `{step}` and
#: `{workflow}` are filled in, `{primary}` and `{hint}` come from the error.
_REFUSALS = {
    "tasks_status_transition": "{primary}: {hint}",
    "tasks_cancelled_has_reason": "task {task_id}: a cancelled task needs a reason (why it was cancelled)",
    "tasks_reason_when_held_or_cancelled": "task {task_id}: only a task on hold or cancelled has a status_reason",
    "tasks_status_reason_length": f"task {{task_id}}: a reason is at most {limits.TASK_STATUS_REASON} characters",
    "tasks_step_of_its_workflow": "current_step_id {step} is not a step of workflow {workflow}, the task's",
    "tasks_current_step_id_fkey": "current_step_id {step} is not a step of workflow {workflow}, the task's",
}


@contextmanager
def _refused_by_the_database(task_id: int, names: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A change the schema refuses (a status move, a reason, a step) becomes a TaskError with its message;
    `names` fills in the message's `{step}` and `{workflow}` (read when the error happens)."""
    try:
        yield
    except (errors.CheckViolation, errors.ForeignKeyViolation) as exc:
        template = _REFUSALS.get(exc.diag.constraint_name or "")
        if template is None:
            raise
        raise TaskError(template.format(task_id=task_id, primary=exc.diag.message_primary,
                                        hint=exc.diag.message_hint, **{"step": None, "workflow": None,
                                                                       **(names or {})})) from None


def _save(conn: psycopg.Connection, task_id: int, **columns) -> None:
    assignments = ", ".join(f"{name} = %({name})s" for name in columns)
    conn.execute(f"UPDATE tasks SET {assignments}, updated_at = clock_timestamp() WHERE task_id = %(task_id)s",
                 {**columns, "task_id": task_id})


def _new_assignments(conn: psycopg.Connection, user_ids: list[int], role: str | None, status: str = "assigned",
                     **profile: str | None) -> list[dict]:
    """The seed's assignment objects, stamped with the database's clock (as the assignment DAG stamps them).

    `profile` holds the optional `username` and `email` of the seed's UserAssignmentSerializer.
    """
    stamp = _stamp(conn)
    extra = {key: value for key, value in profile.items() if value is not None}
    return [{"userID": user_id, "status": status, "assigned_on": stamp, "role": role, **extra}
            for user_id in user_ids]


def _stamp(conn: psycopg.Connection) -> str:
    """Now, by the database's clock, as the seed wrote `assigned_on`."""
    return one(conn.execute("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
                            ))[0]


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
    """Complete the task (a cancelled one is refused by the database) and run its workflow's end logic."""
    if status == "completed":
        raise TaskError(f"task {task_id} is completed already")
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
    with _refused_by_the_database(task_id), conn.transaction():
        _, status, _, _ = _locked(conn, task_id)
        _complete(conn, task_id, status)
    return get_task(conn, task_id)


def move_to_next_step(conn: psycopg.Connection, task_id: int, users_for_role: Callable[[str], list[int]],
                      max_assignments: int) -> dict:
    """The next step by step_order, with the next users of its role; after the last step, the task completes."""
    with _refused_by_the_database(task_id), conn.transaction():
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


def hold_task(conn: psycopg.Connection, task_id: int, reason: str | None = None) -> dict:
    """Put the task on hold, with why if given; a held task resumes by an edit of its status."""
    return _move(conn, task_id, "on_hold", reason)


def cancel_task(conn: psycopg.Connection, task_id: int, reason: str) -> dict:
    """Cancel the task, saying why (required); cancelled is final."""
    return _move(conn, task_id, "cancelled", reason)


def _move(conn: psycopg.Connection, task_id: int, target: str, reason: str | None) -> dict:
    with _refused_by_the_database(task_id), conn.transaction():
        _, status, _, _ = _locked(conn, task_id)
        if status == target:
            raise TaskError(f"task {task_id} is {status} already")
        _save(conn, task_id, status=target, status_reason=reason)
    return get_task(conn, task_id)


def update_task(conn: psycopg.Connection, task_id: int, changes: Mapping[str, Any]) -> dict:
    """The seed's PATCH: set the given fields (`EDITABLE`), all in one transaction, or none.

    `status` moves as the database allows (to completed, with the completion's end logic);
    `users` replaces the assignments (each `{"userID", "status", "role", "username", "email",
    "assigned_on"}`; a user already assigned keeps what is left out, a new one is stamped now) and,
    as one user going in progress does, starts a pending task; `fetched_at` is when a client
    fetched the task for its assignee (the seed's manual field: nothing else writes it). The
    users and step of a completed or cancelled task do not change.
    """
    if unknown := sorted(set(changes) - set(EDITABLE)):
        raise TaskError(f"{', '.join(unknown)} cannot be edited; a task's editable fields are {', '.join(EDITABLE)}")
    names = {"step": changes.get("current_step_id"), "workflow": None}
    with _refused_by_the_database(task_id, names), conn.transaction():
        users, status, _, names["workflow"] = _locked(conn, task_id)
        if {"users", "current_step_id"} & set(changes) and status in CLOSED:
            raise TaskError(f"task {task_id} is {status}: its users and step cannot change")
        columns = {name: changes[name] for name in ("current_step_id", "fetched_at", "status_reason")
                   if name in changes}
        target = changes.get("status", status)
        if target not in TASK_STATUSES:
            raise TaskError(f"status must be one of {', '.join(TASK_STATUSES)}, got {target!r}")
        if "users" in changes:
            assignments = _assignments(conn, changes["users"], users)
            columns["users"] = json.dumps(assignments)
            if "status" not in changes and any(u["status"] == "in_progress" for u in assignments):
                target = _started(status, "in_progress")
        if target not in (status, "completed"):
            columns["status"] = target
        if columns:
            _save(conn, task_id, **columns)
        if target == "completed" and status != "completed":
            _complete(conn, task_id, status)
    return get_task(conn, task_id)


def _assignments(conn: psycopg.Connection, given: list[Mapping[str, Any]], current: list[dict]) -> list[dict]:
    """The seed's assignment objects for an edit of `users`, checked as its UserAssignmentSerializer checks them.

    A user already assigned keeps what the edit leaves out (role, username, email, when assigned)."""
    if not isinstance(given, list) or len(given) > limits.TASK_USERS:
        raise TaskError(f"users must be a list of at most {limits.TASK_USERS} assignments")
    before = {u["userID"]: u for u in current}
    now = _stamp(conn)
    result: list[dict] = []
    for user in given:
        user_id, status = user.get("userID"), user.get("status", "assigned")
        if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1:
            raise TaskError(f"userID must be a positive integer, got {user_id!r}")
        if any(u["userID"] == user_id for u in result):
            raise TaskError(f"user {user_id} is listed twice")
        if status not in USER_STATUSES:
            raise TaskError(f"user status must be one of {', '.join(USER_STATUSES)}, got {status!r}")
        kept = before.get(user_id, {})
        entry = {**kept, "userID": user_id, "status": status, "assigned_on": kept.get("assigned_on") or now,
                 "role": kept.get("role")}
        entry.update({key: user[key] for key in ("role", "username", "email", "assigned_on")
                      if user.get(key) is not None})
        if isinstance(entry["assigned_on"], datetime):
            entry["assigned_on"] = entry["assigned_on"].astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        result.append(entry)
    return result


def assigned_users_by_status(conn: psycopg.Connection, task_id: int, status: str | None = None) -> list[dict]:
    """The seed's `get_assigned_users_by_status`: the task's assignments, only those in `status` when given."""
    if status is not None and status not in USER_STATUSES:
        raise TaskError(f"user status must be one of {', '.join(USER_STATUSES)}, got {status!r}")
    return [user for user in get_task(conn, task_id)["users"] if status is None or user.get("status") == status]


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
