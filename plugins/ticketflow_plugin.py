"""The Ticketflow plugin: its API and pages on Airflow's API server, the pages in the UI's navigation.

One server, one login: the routes under /ticketflow take the same JWT as
/api/v2 (or the UI's cookie) and appear in the API server's /openapi.json.
Airflow imports this file in every process; the app is built only where it is
served (see `ticketflow.web.mount`).
"""

from airflow.plugins_manager import AirflowPlugin

from ticketflow.web.mount import URL_PREFIX, LazyApp, PublishInRootOpenApi


def _create_app():
    from ticketflow.web.app import create_app

    return create_app()


ticketflow_app = LazyApp(_create_app)


class TicketflowPlugin(AirflowPlugin):
    name = "ticketflow"
    fastapi_apps = [{"app": ticketflow_app, "url_prefix": URL_PREFIX, "name": "Ticketflow API and dashboard"}]
    fastapi_root_middlewares = [{"middleware": PublishInRootOpenApi, "args": [ticketflow_app, URL_PREFIX],
                                 "name": "Ticketflow routes in /openapi.json"}]
    external_views = [{"name": "Ticketflow", "href": f"{URL_PREFIX}/dashboard",
                       "url_route": "ticketflow-health", "destination": "nav", "nav_top_level": True},
                      {"name": "Recurring tickets", "href": f"{URL_PREFIX}/recurring-tickets",
                       "url_route": "ticketflow-recurring", "destination": "nav", "nav_top_level": True}]
