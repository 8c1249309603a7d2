"""`/ticketflow/recurring/...`: recurring templates as people manage them (`ticketflow.recurring_templates`).

Reading needs the right to read the `recurring_tickets` DAG; changing, the
right to edit it (the unsaved preview only reads). Bodies are checked here for
shape and bounds, then by the job's own rules (`check_schedule`): either way a
refusal is a 422 naming the field, and changes nothing. An action the
template's state does not allow is a 409; an unknown template, a 404.

(No `from __future__ import annotations`: FastAPI reads the annotations at runtime.)
"""

import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Discriminator, Field, Tag, WithJsonSchema, field_validator
from pydantic.json_schema import SkipJsonSchema

from ticketflow import clock, limits, settings
from ticketflow import recurring_templates as templates
from ticketflow.recurrence import RecurrenceError
from ticketflow.web import schemas
from ticketflow.web.task_changes import Reason

RECURRING_DAG = "recurring_tickets"
#: How far past its start an unsaved schedule may be previewed: a reader's request must not walk millennia.
PREVIEW_SPAN = timedelta(days=200 * 366)


#: An instant with its UTC offset, or a local date-time without one (a form's datetime-local input), which the
#: server reads in the template's zone by the job's own rule for wall times; years 1900 to 8999.
WHEN_PATTERN = (r"^(19[0-9]{2}|[2-8][0-9]{3})-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                r"(Z|[+-][0-9]{2}:[0-9]{2})?$")


def _when_text(value: Any) -> Any:
    """Written out, as the pattern says: a number would be read as seconds since 1970, past the years' bounds."""
    if not isinstance(value, str) or not re.fullmatch(WHEN_PATTERN, value):
        raise ValueError("give an instant with its UTC offset (2026-12-07T09:00:00-05:00), or a local date-time"
                         " (2026-12-07T09:00) read in the template's time zone; years 1900 to 8999")
    return value


Instant = Annotated[datetime, BeforeValidator(_when_text), WithJsonSchema({
    "type": "string", "pattern": WHEN_PATTERN,
    "description": "An instant with its UTC offset, or a local date-time without one, read in the template's"
                   " time zone (a wall time that does not exist or occurs twice is read as RFC 5545 says)"})]
NoNul = schemas.NoNul
#: Text that says something: not blank, no NUL bytes (as intake's fields).
_NOT_BLANK = r"^[^\x00]*[^\x00\t\n\r ][^\x00]*$"
#: A lead time longer than a year is a typo, not a plan.
LEAD_TIME_MAX_SECONDS = 366 * 86400


def _text(column: str, required: bool = False, limit: int | None = None) -> Any:
    return Annotated[str, Field(min_length=1, max_length=limit or limits.column_length("tickets", column),
                                pattern=_NOT_BLANK if required else NoNul)]


Subject = _text("subject", True, limits.TEMPLATE_SUBJECT)
Department = _text("department", True)
Category = _text("category", True)
Priority = Literal["low", "medium", "high", "urgent"]
Requester = Annotated[str, Field(min_length=3, max_length=limits.EMAIL,
                                 pattern=r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$")]
TimeZoneName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_+\-/]+$",
                                    description="An IANA time zone, such as America/Toronto")]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


RuleText = Annotated[str, Field(min_length=1, max_length=limits.column_length("tickets", "recurrence_rule"),
                                pattern=NoNul, description="An RFC 5545 RRULE, such as FREQ=WEEKLY;BYDAY=MO")]


class TicketflowIntervalSchedule(_Body):
    """Every `every` (default 1) `interval`s from the start."""

    interval: Literal["daily", "weekly", "monthly"]
    every: Annotated[int, Field(ge=1, le=1000, strict=True)] | None = None
    rrule: None = None


class TicketflowRuleSchedule(_Body):
    """An RFC 5545 RRULE from the start (its DTSTART)."""

    rrule: RuleText
    interval: None = None
    every: None = None


def _schedule_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "rrule" if value.get("rrule") is not None else "interval"
    return "rrule" if getattr(value, "rrule", None) is not None else "interval"


#: One kind or the other, never both: the document says so, so a client (or a fuzzer) can know it.
TicketflowSchedule = Annotated[
    Annotated[TicketflowIntervalSchedule, Tag("interval")] | Annotated[TicketflowRuleSchedule, Tag("rrule")],
    Discriminator(_schedule_kind)]


class _TemplateFields(_Body):
    description: Annotated[str, Field(max_length=limits.column_length("tickets", "description"),
                                      pattern=NoNul)] | None = None
    sub_category: _text("sub_category") | None = None  # type: ignore[valid-type]
    priority: Priority | None = None
    requester: Requester | None = None
    end: Instant | None = Field(None, description="No occurrence after this instant")
    lead_time_seconds: Annotated[int, Field(ge=0, le=LEAD_TIME_MAX_SECONDS, strict=True)] | None = Field(
        None, description="Create each ticket this long before its occurrence")
    missed_policy: Literal["latest_only", "create_all"] | None = Field(
        None, description="After an outage: create only the newest missed occurrence, or every one")


class TicketflowTemplateIn(_TemplateFields):
    """A new template. The tickets it creates need a department and a category, as every ticket does."""

    subject: Subject  # type: ignore[valid-type]
    department: Department  # type: ignore[valid-type]
    category: Category  # type: ignore[valid-type]
    schedule: TicketflowSchedule
    timezone: TimeZoneName | None = Field(None, description="Default: the configured TICKETFLOW_TIMEZONE")
    start: Instant = Field(description="The first occurrence, from which every other one is computed")


class TicketflowTemplateEdit(_TemplateFields):
    """The fields to change; those left out stay. Null clears the optional ones."""

    subject: Subject | SkipJsonSchema[None] = None  # type: ignore[valid-type]
    department: Department | SkipJsonSchema[None] = None  # type: ignore[valid-type]
    category: Category | SkipJsonSchema[None] = None  # type: ignore[valid-type]
    schedule: TicketflowSchedule | SkipJsonSchema[None] = None
    timezone: TimeZoneName | SkipJsonSchema[None] = None
    start: Instant | SkipJsonSchema[None] = None

    @field_validator("subject", "department", "category", "schedule", "timezone", "start", mode="after")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, not null")
        return value


class TicketflowOccurrence(BaseModel):
    local: str = Field(description="In the template's time zone, with its UTC offset")
    utc: str


class TicketflowScheduleOut(BaseModel):
    interval: str | None
    every: int | None
    rrule: str | None


class TicketflowTemplate(BaseModel):
    id: int
    subject: str
    description: str | None
    department: str | None
    category: str | None
    sub_category: str | None
    priority: str | None
    requester: str | None
    schedule: TicketflowScheduleOut
    timezone: str
    start: datetime
    end: datetime | None
    lead_time_seconds: int
    missed_policy: str
    state: Literal["active", "paused", "parked", "ended"]
    parked_reason: str | None
    next_occurrence: datetime | None = Field(description="The job's pointer: the next occurrence it has not handled"
                                             " (it may be one that is skipped)")
    upcoming: datetime | None = Field(None, description="The next instant the job will create a ticket at, skips"
                                      " left out and moves applied; null unless the template is active")
    paused_at: datetime | None = None
    paused_by: str | None = None
    pause_reason: str | None = None


class TicketflowTemplateDetail(TicketflowTemplate):
    next_occurrences: list[TicketflowOccurrence]


class TicketflowTemplateCollection(BaseModel):
    templates: list[TicketflowTemplate]
    total: int


class TicketflowPause(_Body):
    reason: Reason | None = Field(None, description="Why it is paused (shown with it)")


class TicketflowResume(_Body):
    missed: Literal["policy", "skip"] = Field(
        templates.RESUME_DEFAULT,
        description="Occurrences that fell due while paused: `skip` (default, as GLPI does) records them as"
                    " skipped; `policy` leaves them to the template's missed_policy")


class TicketflowSkip(_Body):
    occurrence: Instant = Field(description="An occurrence of the schedule not yet created")
    reason: Reason


class TicketflowMove(_Body):
    occurrence: Instant = Field(description="An occurrence of the schedule not yet created")
    to: Instant = Field(description="When its ticket is created instead (not in the past)")
    reason: Reason


class TicketflowReschedule(_Body):
    from_: Instant = Field(alias="from", description="The series' new first occurrence; it goes on from there")
    reason: Reason | None = None

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, populate_by_name=True)


class TicketflowPreviewRequest(_Body):
    """An unsaved schedule, as a form holds it before saving."""

    schedule: TicketflowSchedule
    timezone: TimeZoneName | None = None
    start: Instant
    end: Instant | None = None
    count: Annotated[int, Field(ge=1, le=templates.PREVIEW_MAX, strict=True)] = 10
    after: Instant | None = Field(None, description="Occurrences at or after this instant (default: the start)")


class TicketflowPreview(BaseModel):
    occurrences: list[TicketflowOccurrence]


class TicketflowHistoryEntry(BaseModel):
    kind: Literal["created", "skipped", "moved"]
    occurrence: datetime
    ticket_id: int | None
    by: str | None
    reason: str | None
    at: datetime


class TicketflowHistory(BaseModel):
    entries: list[TicketflowHistoryEntry]
    total: int


def _refusal(exc: templates.InvalidTemplate) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": msg} for loc, msg in exc.problems])


def routes(connection: Callable[..., Iterator[psycopg.Connection]], errors: dict[int | str, dict[str, Any]],
           ) -> APIRouter:
    """The routes on the app's connections; `errors`: the app's error responses for the document."""
    from ticketflow.web import auth  # Airflow's API auth: imported where the app is built, on the API server only

    Conn = Annotated[psycopg.Connection, Depends(connection)]
    User = Annotated[Any, Depends(auth.authenticated_user)]
    TemplateId = Annotated[int, Path(ge=1, le=schemas.ID_MAX)]
    edit = Depends(auth.may_edit(RECURRING_DAG))
    router = APIRouter(prefix="/recurring", tags=["Ticketflow recurring tickets"],
                       dependencies=[Depends(auth.may_read(RECURRING_DAG))], responses=errors)

    def call(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except templates.TemplateNotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
        except templates.TemplateConflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except templates.InvalidTemplate as exc:
            raise _refusal(exc) from None

    def tz() -> str:
        return settings.default_timezone()

    def occurrences(instants: list[datetime], zone: str) -> list[dict[str, str]]:
        return [templates.occurrence_json(instant, zone) for instant in instants]

    @router.get("/templates", response_model=TicketflowTemplateCollection)
    def list_templates(conn: Conn, state: Literal["active", "paused", "parked", "ended"] | None = None,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       offset: Annotated[int, Query(ge=0, le=schemas.ID_MAX)] = 0):
        """Live recurring templates, soonest next occurrence first; `state` keeps one state."""
        rows, total = templates.list_templates(conn, tz(), state, limit, offset)
        return {"templates": rows, "total": total}

    @router.get("/templates/{template_id:digits}", response_model=TicketflowTemplateDetail)
    def get_template(conn: Conn, template_id: TemplateId):
        """One template, with the next 10 instants the job will create its tickets at."""
        def read():
            template = templates.get_template(conn, template_id, tz())
            upcoming = templates.template_occurrences(conn, template_id, tz(), 10)
            return {**template, "next_occurrences": occurrences(upcoming, template["timezone"])}
        return call(read)

    @router.post("/templates", response_model=TicketflowTemplate, status_code=status.HTTP_201_CREATED,
                 dependencies=[edit])
    def create_template(conn: Conn, body: TicketflowTemplateIn):
        """A new template; the job creates its first ticket at its start (or the schedule's first after it)."""
        return call(lambda: templates.create_template(conn, body.model_dump(), tz()))

    @router.patch("/templates/{template_id:digits}", response_model=TicketflowTemplate, dependencies=[edit])
    def edit_template(conn: Conn, user: User, template_id: TemplateId, body: TicketflowTemplateEdit):
        """Sets the fields given, all or none; a new schedule applies from the next occurrence not yet created,
        and a start moved before it (to now or later) restarts the series there."""
        return call(lambda: templates.edit_template(conn, template_id, body.model_dump(exclude_unset=True),
                                                    user.get_name(), clock.utc_now(), tz()))

    @router.post("/templates/{template_id:digits}/pause", response_model=TicketflowTemplate, dependencies=[edit])
    def pause_template(conn: Conn, user: User, template_id: TemplateId,
                       body: Annotated[TicketflowPause | None, Body()] = None):
        """Pauses the template: the job creates nothing for it until it is resumed (409 if paused or ended)."""
        return call(lambda: templates.pause_template(conn, template_id, body.reason if body else None,
                                                     user.get_name(), tz()))

    @router.post("/templates/{template_id:digits}/resume", response_model=TicketflowTemplate,
                 dependencies=[edit])
    def resume_template(conn: Conn, user: User, template_id: TemplateId,
                        body: Annotated[TicketflowResume | None, Body()] = None):
        """Resumes a paused template (409 otherwise); see `missed` for what fell due meanwhile."""
        missed = body.missed if body else templates.RESUME_DEFAULT
        return call(lambda: templates.resume_template(conn, template_id, missed, user.get_name(), clock.utc_now(),
                                                      tz()))

    @router.post("/templates/{template_id:digits}/skip", response_model=TicketflowTemplate, dependencies=[edit])
    def skip_occurrence(conn: Conn, user: User, template_id: TemplateId, body: TicketflowSkip):
        """Skips one occurrence not yet created (like an EXDATE), recorded with who and why."""
        return call(lambda: templates.skip_occurrence(conn, template_id, body.occurrence, body.reason,
                                                      user.get_name(), tz()))

    @router.post("/templates/{template_id:digits}/move", response_model=TicketflowTemplate, dependencies=[edit])
    def move_occurrence(conn: Conn, user: User, template_id: TemplateId, body: TicketflowMove):
        """Moves one occurrence not yet created: its ticket comes at `to` instead."""
        return call(lambda: templates.move_occurrence(conn, template_id, body.occurrence, body.to, body.reason,
                                                      user.get_name(), clock.utc_now(), tz()))

    @router.post("/templates/{template_id:digits}/reschedule", response_model=TicketflowTemplate,
                 dependencies=[edit])
    def reschedule_template(conn: Conn, user: User, template_id: TemplateId, body: TicketflowReschedule):
        """Restarts the series at `from` (now or later): its new first occurrence, the schedule going on from there."""
        return call(lambda: templates.reschedule_template(conn, template_id, body.from_, body.reason,
                                                          user.get_name(), clock.utc_now(), tz()))

    @router.get("/templates/{template_id:digits}/preview", response_model=TicketflowPreview)
    def preview_template(conn: Conn, template_id: TemplateId,
                         count: Annotated[int, Query(ge=1, le=templates.PREVIEW_MAX)] = 10):
        """The next `count` instants the job will create this template's tickets at, skips and moves applied."""
        def read():
            template = templates.get_template(conn, template_id, tz())
            upcoming = templates.template_occurrences(conn, template_id, tz(), count)
            return {"occurrences": occurrences(upcoming, template["timezone"])}
        return call(read)

    @router.post("/preview", response_model=TicketflowPreview)
    def preview_schedule(conn: Conn, body: TicketflowPreviewRequest):
        """The first `count` occurrences of an unsaved schedule (a form's live preview); writes nothing."""
        zone = body.timezone or tz()
        try:
            start, end, after = (templates.read_when(conn, value, zone, name)
                                 for name, value in (("start", body.start), ("end", body.end), ("after", body.after)))
        except templates.InvalidTemplate as exc:
            raise _refusal(exc) from None
        assert start is not None
        if after is not None and after - start > PREVIEW_SPAN:  # an RRULE is walked from its start: bound the walk
            raise _refusal(templates.InvalidTemplate([(("body", "after"), "after must be at most 200 years after"
                                                                          " start")]))
        schedule = templates.Schedule(body.schedule.interval, body.schedule.every, body.schedule.rrule, zone,
                                      start, end)
        problems = templates.check_schedule(conn, schedule)
        if problems:
            raise _refusal(templates.InvalidTemplate([(("body", *loc), msg) for loc, msg in problems]))
        try:
            found = templates.schedule_occurrences(conn, schedule, after or start, count=body.count)
        except RecurrenceError as exc:
            raise _refusal(templates.InvalidTemplate([(("body", "schedule"), str(exc))])) from None
        return {"occurrences": occurrences(found, zone)}

    @router.get("/templates/{template_id:digits}/history", response_model=TicketflowHistory)
    def template_history(conn: Conn, template_id: TemplateId, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                         offset: Annotated[int, Query(ge=0, le=schemas.ID_MAX)] = 0):
        """Occurrences created (with their ticket ids), skipped and moved, newest first."""
        def read():
            entries, total = templates.history(conn, template_id, tz(), limit, offset)
            return {"entries": entries, "total": total}
        return call(read)

    return router
