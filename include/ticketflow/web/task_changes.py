"""The rest of the seed's task API: hold, cancel with a reason, edit (PATCH), and a task's users by status.

Mounted by `create_app` under `/tasks` beside the seed's actions, with the same
rights: reading needs the right to read the assignment DAG, changing the right
to edit it. A move the task's lifecycle does not allow is a 409 with the
database's reason; nothing is changed.

(No `from __future__ import annotations` here: FastAPI reads the route
signatures' annotations at runtime.)
"""

import re
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.json_schema import SkipJsonSchema

from ticketflow import limits, tasks
from ticketflow.web import schemas

#: Instants the database and every client read back exactly: years 1900 to 8999, written with their UTC offset.
INSTANT_PATTERN = r"^(19[0-9]{2}|[2-8][0-9]{3})-"


def _plausible_year(value: Any) -> Any:
    if isinstance(value, str) and not re.match(INSTANT_PATTERN, value):
        raise ValueError("give an instant from the years 1900 to 8999 with its UTC offset, e.g. 2026-03-04T09:30:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_plausible_year), Field(json_schema_extra={
    "pattern": INSTANT_PATTERN})]
#: A reason says something: at least one character that is not a space, tab or line break; no NUL bytes.
Reason = Annotated[str, Field(min_length=1, max_length=limits.TASK_STATUS_REASON,
                              pattern=r"^[^\x00]*[^\x00\t\n\r ][^\x00]*$")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TicketflowHoldTask(_Body):
    reason: Reason | None = Field(None, description="Why the task waits (optional)")


class TicketflowCancelTask(_Body):
    reason: Reason = Field(description="Why the task is cancelled (required: cancelled is final)")


class TicketflowTaskAssignment(_Body):
    """One of the task's users, as the seed's UserAssignmentSerializer has them; a user already assigned keeps
    what is left out."""

    userID: schemas.UserId
    status: schemas.UserStatus = "assigned"
    role: schemas.RoleName | None = None
    username: schemas.Username | None = None
    email: schemas.Email | None = None
    assigned_on: Instant | None = Field(None, description="A new user is stamped now when left out")


Assignments = Annotated[list[TicketflowTaskAssignment], Field(max_length=limits.TASK_USERS)]


class TicketflowTaskEdit(_Body):
    """The fields an edit may set; those left out stay as they are. Null clears the nullable ones."""

    status: schemas.TaskStatus | SkipJsonSchema[None] = Field(
        None, description="Moves as the task's lifecycle allows (409 otherwise); completed runs the end logic")
    status_reason: Reason | None = Field(None, description="Why the task is on hold or cancelled")
    current_step_id: schemas.Id | None = Field(None, description="A step of the task's own workflow")
    users: Assignments | SkipJsonSchema[None] = Field(
        None, description="Replaces the task's users (each once: 409 otherwise); one in progress starts a pending"
                          " task")
    fetched_at: Instant | None = Field(None, description="When a client fetched the task for its assignee")

    @field_validator("status", "users", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, not null")
        return value


def routes(connection: Callable[..., Iterator[psycopg.Connection]], dag_id: str) -> APIRouter:
    """The routes, reading `ticketing_db` through `connection` and guarded by the rights on `dag_id`."""
    from ticketflow.web import auth  # Airflow's API auth: imported where the app is built, on the API server only
    from ticketflow.web.app import TicketflowError

    Conn = Annotated[psycopg.Connection, Depends(connection)]
    TaskId = Annotated[int, Path(ge=1, le=schemas.ID_MAX)]
    edit = Depends(auth.may_edit(dag_id))
    refusals: dict[int | str, dict[str, Any]] = {code: {"model": TicketflowError} for code in (401, 403, 404, 409)}
    router = APIRouter(prefix="/tasks", tags=["Ticketflow tasks"], dependencies=[Depends(auth.may_read(dag_id))])

    @router.get("/{task_id:digits}/assigned_users", response_model=list[schemas.TicketflowTaskUser],
                responses={code: refusals[code] for code in (401, 403, 404)})
    def task_assigned_users(conn: Conn, task_id: TaskId,
                            status: Annotated[schemas.UserStatus | None, Query()] = None):
        """The seed's `get_assigned_users_by_status`: the task's users, only those in `status` when given."""
        return tasks.assigned_users_by_status(conn, task_id, status)

    @router.post("/{task_id:digits}/hold", response_model=schemas.TicketflowTask, dependencies=[edit],
                 responses=refusals)
    def hold_task(conn: Conn, task_id: TaskId, body: Annotated[TicketflowHoldTask | None, Body()] = None):
        """Puts the task on hold, with why if given; an edit of its status resumes it."""
        return tasks.hold_task(conn, task_id, body.reason if body else None)

    @router.post("/{task_id:digits}/cancel", response_model=schemas.TicketflowTask, dependencies=[edit],
                 responses=refusals)
    def cancel_task(conn: Conn, task_id: TaskId, body: TicketflowCancelTask):
        """Cancels the task with the reason; cancelled is final."""
        return tasks.cancel_task(conn, task_id, body.reason)

    @router.patch("/{task_id:digits}", response_model=schemas.TicketflowTask, dependencies=[edit], responses=refusals)
    def update_task(conn: Conn, task_id: TaskId, body: TicketflowTaskEdit):
        """Sets the fields given (status, status_reason, current_step_id, users, fetched_at), all or none."""
        return tasks.update_task(conn, task_id, body.model_dump(exclude_unset=True))

    return router
