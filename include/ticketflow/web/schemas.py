"""Request and response bodies of the Ticketflow API, as they appear in the OpenAPI document.

Integers are bounded to what the columns hold, numbers are finite, text is
bounded by its column (`ticketflow.limits`) and refuses NUL bytes, and unknown
fields are refused: bad input is a 422 naming the field, never a database error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from ticketflow import limits
from ticketflow.tasks import TASK_STATUSES, USER_STATUSES

INT4_MAX = 2**31 - 1
ID_MAX = 2**53 - 1  # the largest integer every JSON reader holds exactly (bigint columns hold more)

Id = Annotated[int, Field(ge=1, le=ID_MAX)]
TdxTicketId = Annotated[int, Field(ge=1, le=INT4_MAX, description="A TeamDynamix ticket id")]
UserId = Annotated[int, Field(ge=1, le=ID_MAX, description="The user's id in the people directory (TTS)")]
NoNul = r"^[^\x00]*$"
Username = Annotated[str, Field(min_length=1, max_length=limits.USERNAME, pattern=NoNul)]
Email = Annotated[str, Field(min_length=1, max_length=limits.EMAIL, pattern=NoNul)]
RoleName = Annotated[str, Field(min_length=1, max_length=limits.ROLE_NAME, pattern=NoNul)]
TaskStatus = Literal[TASK_STATUSES]  # type: ignore[valid-type]
UserStatus = Literal[USER_STATUSES]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class TicketflowTaskUser(BaseModel):
    model_config = ConfigDict(extra="allow")

    userID: int
    status: str
    assigned_on: str | None = None
    role: str | None = None
    username: str | None = None
    email: str | None = None


class TicketflowTask(BaseModel):
    """The seed's TaskSerializer: the task and the read-only fields of its ticket, workflow and step."""

    task_id: int
    ticket_id: int
    workflow_id: int
    current_step_id: int | None
    users: list[TicketflowTaskUser]
    status: str
    status_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    fetched_at: datetime | None
    completed_at: datetime | None
    ticket_subject: str
    workflow_name: str
    current_step_name: str | None
    current_step_role: str | None
    assigned_users_count: int


class TicketflowTaskCollection(BaseModel):
    tasks: list[TicketflowTask]
    total_entries: int


class TicketflowCreateTask(_Body):
    ticket_id: Id


class TicketflowAssignUser(_Body):
    """The seed's UserAssignmentSerializer."""

    userID: UserId
    username: Username | None = None
    email: Email | None = None
    role: RoleName | None = None
    status: UserStatus = "assigned"


class TicketflowUserStatus(_Body):
    user_id: UserId
    status: UserStatus


class TicketflowWorkflowStatistics(BaseModel):
    workflow_id: int
    workflow_name: str
    total: int
    by_status: dict[str, int]
    mean_seconds_to_complete: float | None


class TicketflowEvent(BaseModel):
    id: int
    title: str
    start_date: datetime
    end_date: datetime | None
    status: str
    created_at: datetime
    updated_at: datetime


class TicketflowEventCollection(BaseModel):
    events: list[TicketflowEvent]
    total_entries: int


class TicketflowTdxAction(BaseModel):
    log_id: UUID
    ticket_id: int
    action_type: str
    action_id: str
    status: str
    executed_at: datetime
    error_message: str | None
    metadata: dict[str, Any]
    dag_run_id: str | None


class TicketflowTdxSummaryRow(BaseModel):
    action_type: str
    status: str
    actions: int
    tickets: int
    first_executed_at: datetime
    last_executed_at: datetime


class TicketflowTdxSummary(BaseModel):
    total_actions: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    summary: list[TicketflowTdxSummaryRow]


class TicketflowClearTicket(_Body):
    """Forget one TDX ticket's failed actions, so the next run tries them again."""

    ticket_id: TdxTicketId


class TicketflowClearAll(_Body):
    """Forget every ticket's failed actions: said explicitly, never implied by a missing ticket_id."""

    all: Literal[True]


TicketflowClearFailed = TicketflowClearTicket | TicketflowClearAll


class TicketflowCleared(BaseModel):
    cleared: int
