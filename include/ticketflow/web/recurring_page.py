"""The Recurring tickets page: templates with their next occurrence and state, a form with a live preview, and
the pause, resume and skip actions, in the Airflow UI's navigation beside the dashboard.

The server renders a shell; one script served beside it (`static/recurring.js`: the CSP admits scripts from
this origin, so the page needs no inline script) reads and changes templates only through the
`/ticketflow/recurring` API. Its writes are JSON `fetch`es from this origin with the UI's cookie, which the
guard accepts (the browser sends `Sec-Fetch-Site: same-origin`) and the API authorizes as it would any caller.
The buttons that change a template are drawn only for a user who may edit `recurring_tickets`; the API
refuses everyone else whatever the page draws.

(No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.)
"""

from functools import cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from ticketflow import settings

SCRIPT_PATH = Path(__file__).parent / "static" / "recurring.js"


@cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                                     autoescape=True, undefined=jinja2.StrictUndefined)
    return environment.get_template("recurring.html.j2")


def render(app_root: str, can_edit: bool, default_timezone: str) -> str:
    """The page for the app mounted at `app_root`; `can_edit` draws the buttons that change templates."""
    return _template().render(api_root=f"{app_root}/recurring", script=f"{app_root}/static/recurring.js",
                              dashboard=f"{app_root}/dashboard", can_edit=can_edit,
                              default_timezone=default_timezone)


def _default_timezone() -> str:
    """The zone a new template starts in; a bad `TICKETFLOW_TIMEZONE` leaves the form at UTC (the API says why
    when a template is saved without a zone)."""
    try:
        return settings.default_timezone()
    except ValueError:
        return "UTC"


def routes(dag_id: str) -> APIRouter:
    """The page and its script: reading them needs read access to `dag_id`, as the API's reads do."""
    from ticketflow.web import auth  # Airflow's API auth: on the API server only, as in `create_app`

    router = APIRouter(tags=["Ticketflow recurring tickets page"], dependencies=[Depends(auth.may_read(dag_id))])

    @router.get("/recurring-tickets", response_class=HTMLResponse)
    def recurring_tickets_page(request: Request, user: Annotated[Any, Depends(auth.authenticated_user)]):
        """The Recurring tickets page (HTML, shown in the Airflow UI's navigation)."""
        return render(request.scope.get("root_path", ""), auth.is_authorized(user, "PUT", dag_id),
                      _default_timezone())

    @router.get("/static/recurring.js", include_in_schema=False)
    def recurring_tickets_script():
        return Response(_script(), media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"})

    return router


@cache
def _script() -> str:
    return SCRIPT_PATH.read_text(encoding="utf-8")
