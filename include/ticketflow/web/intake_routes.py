"""`POST /ticketflow/tickets`: tickets in bulk, beside the `ticket_intake` DAG's one ticket per run.

The same validation as the DAG (`ticketflow.intake`), up to 1,000 tickets in
one transaction, safe to retry with an `Idempotency-Key`. Using it needs the
right to edit `ticket_intake`.

(No `from __future__ import annotations`: FastAPI reads the annotations at runtime.)
"""

from copy import deepcopy
from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Depends, Header, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from ticketflow import intake
from ticketflow.web.database import Database

INTAKE_DAG = "ticket_intake"

#: One ticket: any JSON object to pydantic, checked by `intake.problems` against the schema the document shows.
NewTicket = Annotated[dict[str, Any], WithJsonSchema(deepcopy(intake.TICKET_SCHEMA))]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="Makes a retry safe: the same key with the same tickets returns the first answer and writes"
                " nothing; with other tickets, 409. Keys are kept per user.")]


class TicketflowTicketBatch(BaseModel):
    """One ticket or a batch: `{"tickets": [...]}`, written all together or not at all."""

    model_config = ConfigDict(extra="forbid")

    tickets: list[NewTicket] = Field(min_length=1, max_length=intake.MAX_BATCH)


class TicketflowReceivedTicket(BaseModel):
    index: int
    ticket_id: int
    action: Literal["created", "updated"]


class TicketflowReceivedTickets(BaseModel):
    """Each ticket's id, in the request's order; `updated`: its external_id was known."""

    tickets: list[TicketflowReceivedTicket]
    created: int
    updated: int


def _refusal(exc: intake.InvalidBatch) -> RequestValidationError:
    """FastAPI's 422 body: one error per problem, located at the ticket's index and field."""
    return RequestValidationError([
        {"type": "value_error", "loc": ("body", "tickets", index, *((field,) if field else ())), "msg": message}
        for index, field, message in exc.problems])


def tickets_router(database: Database, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    """The route, on the app's connection pool; `errors`: the app's error responses for the document."""
    from ticketflow.web import auth

    Conn = Annotated[psycopg.Connection, Depends(database.connection)]
    User = Annotated[Any, Depends(auth.authenticated_user)]
    router = APIRouter(prefix="/tickets", tags=["Ticketflow tickets"])

    @router.post("", response_model=TicketflowReceivedTickets, dependencies=[Depends(auth.may_edit(INTAKE_DAG))],
                 responses=errors)
    def receive_tickets(conn: Conn, user: User, body: TicketflowTicketBatch, response: Response,
                        idempotency_key: IdempotencyKey = None):
        """Creates tickets, or updates those whose external_id is known; each new one wakes assignment.

        A bad ticket refuses the batch (422 naming its index and field) and nothing is written.
        """
        try:
            answer, repeated = intake.receive_batch(conn, body.tickets, user.get_name(), idempotency_key)
        except intake.InvalidBatch as exc:
            raise _refusal(exc) from None
        except intake.IdempotencyKeyReused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        if repeated:
            response.headers["Idempotent-Replayed"] = "true"
        return answer

    return router
