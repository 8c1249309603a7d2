"""Who may call the Ticketflow API: Airflow's own users, through Airflow's auth manager.

Every route needs an authenticated user (the JWT bearer token of the REST
API, or the UI's cookie). Reading an automation's data needs the right to read
its DAG; changing it, the right to edit that DAG: a viewer can look but not
touch, and with a per-DAG auth manager (FAB, Keycloak) a team sees only its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import HTTPException, status

authenticated_user = get_user


def is_authorized(user: BaseUser, method: Literal["GET", "PUT"], dag_id: str) -> bool:
    """Whether `user` may read (GET) or change (PUT) the data of `dag_id`: what the checks below ask, for a page
    that draws a button only for a user whose click the API would accept."""
    return get_auth_manager().is_authorized_dag(method=method, details=DagDetails(id=dag_id), user=user)


def _requires(method: Literal["GET", "PUT"], verb: str, dag_id: str) -> Callable[..., None]:
    def check(user: GetUserDep) -> None:
        if not is_authorized(user, method, dag_id):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"user {user.get_name()!r} may not {verb} the data of {dag_id}")
    return check


def may_read(dag_id: str) -> Callable[..., None]:
    return _requires("GET", "read", dag_id)


def may_edit(dag_id: str) -> Callable[..., None]:
    return _requires("PUT", "change", dag_id)


def readable_dag_ids(user: BaseUser) -> set[str]:
    return get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
