"""Who may call the Ticketflow API: Airflow's own users, through Airflow's auth manager.

Reading needs an authenticated user (the JWT bearer token of the REST API, or
the UI's cookie). Changing an automation's data needs the right to edit that
automation's DAG, so a viewer can look but not touch.
"""

from __future__ import annotations

from collections.abc import Callable

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import HTTPException, status

authenticated_user = get_user


def may_edit(dag_id: str) -> Callable[..., None]:
    def check(user: GetUserDep) -> None:
        if not get_auth_manager().is_authorized_dag(method="PUT", details=DagDetails(id=dag_id), user=user):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"user {user.get_name()!r} may not change the data of {dag_id}")
    return check
