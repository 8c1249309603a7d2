"""The Ticketflow API and dashboard: a FastAPI app that the Airflow plugin mounts on the API server.

The seed's REST endpoints (tasks, events) and the TDX daemon's monitoring,
over the same libraries the DAGs use. Every route needs an Airflow user;
routes that change data need the right to edit the DAG that owns it. Errors
have Airflow's shape, `{"detail": ...}`, and a refused request changes nothing.

(No `from __future__ import annotations` here: FastAPI reads the route
signatures' annotations at runtime, including aliases local to `create_app`.)
"""

from collections.abc import Callable
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Body, Depends, FastAPI, Path, Query, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ticketflow import clock, events, settings, tasks
from ticketflow.settings import TICKETING_DB_CONN_ID
from ticketflow.tdx import log as tdx_log
from ticketflow.tts import TtsClient, TtsError
from ticketflow.web import dashboard, recurring_page, recurring_routes, schemas, task_changes
from ticketflow.web.database import Database, DatabaseUnavailable, airflow_conninfo
from ticketflow.web.guard import guard
from ticketflow.web.intake_routes import tickets_router
from ticketflow.web.mount import URL_PREFIX

TASK_DAG = "ticket_task_assignment"
EVENT_DAG = "event_lifecycle"
TDX_DAG = "tdx_ticket_queue"


class TicketflowError(BaseModel):
    """Airflow's error body: a message, or (422) the list of validation errors."""

    detail: str | list[dict[str, Any]]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": TicketflowError} for code in (401, 403, *codes)}


def _message(exc: Exception) -> str:
    return f"ticketing_db is unavailable: {exc}" if isinstance(exc, psycopg.OperationalError) else str(exc)


def _status_of(exc: Exception) -> int:
    if isinstance(exc, (tasks.TaskNotFound, events.EventNotFound)):
        return status.HTTP_404_NOT_FOUND
    if isinstance(exc, TtsError):
        return status.HTTP_502_BAD_GATEWAY
    if isinstance(exc, (DatabaseUnavailable, psycopg.OperationalError)):
        return status.HTTP_503_SERVICE_UNAVAILABLE
    if isinstance(exc, psycopg.DataError):
        return status.HTTP_400_BAD_REQUEST
    return status.HTTP_409_CONFLICT  # a TaskError: the task's state does not allow it


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Airflow's error shape, and on a 405 an `Allow` naming every method of the path: a path's methods are
    separate routes (GET and PATCH of a task), and Starlette would name only the first route's."""
    if exc.status_code != status.HTTP_405_METHOD_NOT_ALLOWED:
        return await http_exception_handler(request, exc)
    methods = sorted({method for route in request.app.router.routes if isinstance(route, APIRoute)
                      and route.matches(request.scope)[0] != Match.NONE for method in route.methods})
    return JSONResponse({"detail": exc.detail}, exc.status_code, headers={"Allow": ", ".join(methods)})


def create_app(database: Database | None = None,
               users_for_role: Callable[[str], list[int]] | None = None) -> FastAPI:
    """The app, bound to Airflow's users (`ticketflow.web.auth`); by default to `ticketing_db` and the TTS service."""
    from ticketflow.web import auth  # Airflow's API auth: imported where the app is built, on the API server only
    database = database or Database(lambda: airflow_conninfo(TICKETING_DB_CONN_ID))
    users_for_role = users_for_role or (lambda role: TtsClient().users_for_role(role))
    Conn = Annotated[psycopg.Connection, Depends(database.connection)]
    User = Annotated[Any, Depends(auth.authenticated_user)]
    edit_tasks, edit_tdx = Depends(auth.may_edit(TASK_DAG)), Depends(auth.may_edit(TDX_DAG))

    app = FastAPI(title="Ticketflow", version="1", openapi_url=None,
                  description=("Tasks, events, recurring tickets and the TDX action log of Ticketflow,"
                               " on the Airflow API server."),
                  dependencies=[Depends(auth.authenticated_user)], responses=_errors(400, 503),
                  generate_unique_id_function=lambda route: f"ticketflow_{route.name}")
    guard(app, TicketflowError.__name__)  # no cross-site writes, JSON bodies only, security headers

    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    for error in (tasks.TaskError, events.EventNotFound, TtsError, DatabaseUnavailable, psycopg.DataError,
                  psycopg.OperationalError):
        app.add_exception_handler(error, lambda request, exc: JSONResponse({"detail": _message(exc)}, _status_of(exc)))

    task_routes = APIRouter(prefix="/tasks", tags=["Ticketflow tasks"], dependencies=[Depends(auth.may_read(TASK_DAG))])
    TaskId = Annotated[int, Path(ge=1, le=schemas.ID_MAX)]

    @task_routes.get("", response_model=schemas.TicketflowTaskCollection)
    def list_tasks(conn: Conn, status: schemas.TaskStatus | None = None,
                   ticket_id: Annotated[int | None, Query(ge=1, le=schemas.ID_MAX)] = None,
                   workflow_id: Annotated[int | None, Query(ge=1, le=schemas.ID_MAX)] = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Annotated[int, Query(ge=0, le=schemas.ID_MAX)] = 0):
        """Tasks, newest first, with their ticket's subject, workflow, step and number of users."""
        rows, total = tasks.list_tasks(conn, status=status, ticket_id=ticket_id, workflow_id=workflow_id,
                                       limit=limit, offset=offset)
        return {"tasks": rows, "total_entries": total}

    @task_routes.get("/workflow_statistics", response_model=list[schemas.TicketflowWorkflowStatistics])
    def workflow_statistics(conn: Conn):
        """Per workflow: its tasks by status and the mean time to complete one."""
        return tasks.workflow_statistics(conn)

    @task_routes.post("/create_task_for_ticket", response_model=schemas.TicketflowTask,
                      status_code=status.HTTP_201_CREATED, dependencies=[edit_tasks],
                      responses=_errors(404, 409, 502))
    def create_task_for_ticket(conn: Conn, body: schemas.TicketflowCreateTask):
        """The ticket's task now, with the same matching and round-robin as the DAG (409 when it has one)."""
        return tasks.create_task_for_ticket(conn, body.ticket_id, users_for_role, settings.max_assignments())

    @task_routes.get("/{task_id:digits}", response_model=schemas.TicketflowTask, responses=_errors(404))
    def get_task(conn: Conn, task_id: TaskId):
        return tasks.get_task(conn, task_id)

    @task_routes.post("/{task_id:digits}/assign_user", response_model=schemas.TicketflowTask,
                      dependencies=[edit_tasks], responses=_errors(404, 409))
    def assign_user(conn: Conn, task_id: TaskId, body: schemas.TicketflowAssignUser):
        return tasks.assign_user(conn, task_id, body.userID, role=body.role, username=body.username,
                                 email=body.email, status=body.status)

    @task_routes.post("/{task_id:digits}/update_user_status", response_model=schemas.TicketflowTask,
                      dependencies=[edit_tasks], responses=_errors(404, 409))
    def update_user_status(conn: Conn, task_id: TaskId, body: schemas.TicketflowUserStatus):
        """One assigned user's status; a pending task goes in progress when a user does."""
        return tasks.update_user_status(conn, task_id, body.user_id, body.status)

    @task_routes.post("/{task_id:digits}/complete_task", response_model=schemas.TicketflowTask,
                      dependencies=[edit_tasks], responses=_errors(404, 409))
    def complete_task(conn: Conn, task_id: TaskId):
        """Completes the task; a workflow that ends with a notification emails the requester."""
        return tasks.complete_task(conn, task_id)

    @task_routes.post("/{task_id:digits}/move_to_next_step", response_model=schemas.TicketflowTask,
                      dependencies=[edit_tasks], responses=_errors(404, 409, 502))
    def move_to_next_step(conn: Conn, task_id: TaskId):
        """The next step with the next users of its role; after the last step the task completes."""
        return tasks.move_to_next_step(conn, task_id, users_for_role, settings.max_assignments())

    event_routes = APIRouter(prefix="/events", tags=["Ticketflow events"],
                             dependencies=[Depends(auth.may_read(EVENT_DAG))])

    @event_routes.get("", response_model=schemas.TicketflowEventCollection)
    def list_events(conn: Conn, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    offset: Annotated[int, Query(ge=0, le=schemas.ID_MAX)] = 0):
        """Discoverable events, soonest first: no completed, cancelled or archived ones."""
        rows, total = events.discoverable_events(conn, limit, offset)
        return {"events": rows, "total_entries": total}

    @event_routes.get("/my_events", response_model=list[schemas.TicketflowEvent], responses=_errors(404))
    def my_events(conn: Conn, customer_id: Annotated[int, Query(ge=1, le=schemas.ID_MAX)],
                  include_completed: bool = True):
        """The events a customer attends, newest first; `include_completed=false` leaves out past ones."""
        return events.attendee_events(conn, customer_id, include_completed)

    @event_routes.get("/{event_id:digits}", response_model=schemas.TicketflowEvent, responses=_errors(404))
    def get_event(conn: Conn, event_id: Annotated[int, Path(ge=1, le=schemas.ID_MAX)]):
        """Any event by id, completed ones included."""
        return events.get_event(conn, event_id)

    tdx_routes = APIRouter(prefix="/tdx", tags=["Ticketflow TDX action log"],
                           dependencies=[Depends(auth.may_read(TDX_DAG))])

    @tdx_routes.get("/actions/recent", response_model=list[schemas.TicketflowTdxAction])
    def recent_actions(conn: Conn, limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        """Actions of the last 24 hours, newest first."""
        return tdx_log.recent_activity(conn, limit)

    @tdx_routes.get("/actions/summary", response_model=schemas.TicketflowTdxSummary)
    def action_summary(conn: Conn):
        """Actions by type and status."""
        return tdx_log.action_stats(conn)

    @tdx_routes.get("/tickets/{ticket_id:digits}/actions", response_model=list[schemas.TicketflowTdxAction],
                    responses=_errors(404))
    def ticket_actions(conn: Conn, ticket_id: Annotated[int, Path(ge=1, le=schemas.INT4_MAX)]):
        """Every action recorded for one TDX ticket, newest first."""
        return tdx_log.ticket_actions(conn, ticket_id)

    @tdx_routes.post("/actions/clear_failed", response_model=schemas.TicketflowCleared, dependencies=[edit_tdx])
    def clear_failed(conn: Conn, body: Annotated[schemas.TicketflowClearFailed, Body()]):
        """Forgets failed actions, of one ticket (`ticket_id`) or of every ticket (`all: true`), so the next run
        of the queue tries them again."""
        if isinstance(body, schemas.TicketflowClearAll):
            return {"cleared": tdx_log.clear_failed_actions(conn, all_tickets=True)}
        return {"cleared": tdx_log.clear_failed_actions(conn, body.ticket_id)}

    @app.get("/dashboard", response_class=HTMLResponse, tags=["Ticketflow dashboard"])
    def health_dashboard(conn: Conn, request: Request, user: User):
        """The automation health dashboard (an HTML page, shown in the Airflow UI's navigation)."""
        ui_root = request.scope.get("root_path", "").removesuffix(URL_PREFIX)
        return dashboard.render(conn, auth.readable_dag_ids(user), clock.utc_now(), ui_root)

    for router in (task_routes, task_changes.routes(database.connection, TASK_DAG), event_routes, tdx_routes):
        app.include_router(router)
    app.include_router(tickets_router(database, _errors(409, 422)))
    app.include_router(recurring_routes.routes(database.connection, _errors(404, 409, 422)))
    app.include_router(recurring_page.routes(recurring_routes.RECURRING_DAG))
    return app
