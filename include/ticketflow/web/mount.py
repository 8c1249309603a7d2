"""Mounting the Ticketflow app on Airflow's API server: cheaply, and in the API server's OpenAPI document.

Airflow imports plugins in every process (scheduler, DAG processor, each
task), and only the API server serves the app: `LazyApp` builds it on its
first request, so the others never import FastAPI routes or Airflow's API
auth. FastAPI leaves a mounted app out of its parent's document:
`PublishInRootOpenApi`, a root middleware, sees the API server's app on the
first ASGI call (the lifespan startup) and extends its document generator
once, so `/openapi.json` and `/docs` show `/ticketflow/...` beside `/api/v2/...`.

Nothing here imports FastAPI or the app at module level.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

URL_PREFIX = "/ticketflow"


class LazyApp:
    """An ASGI app built by `factory` on first use (a request, or the OpenAPI document)."""

    def __init__(self, factory: Callable[[], Any]):
        self._factory = factory
        self._app = None
        self._lock = threading.Lock()

    @property
    def app(self):
        with self._lock:
            if self._app is None:
                self._app = self._factory()
            return self._app

    def openapi(self) -> dict[str, Any]:
        return self.app.openapi()

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


def merge_openapi(document: dict[str, Any], mounted: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Adds `mounted`'s paths under `prefix` and the components it needs (existing ones are kept)."""
    for path, operations in mounted.get("paths", {}).items():
        document.setdefault("paths", {})[prefix + path] = operations
    for kind, components in mounted.get("components", {}).items():
        known = document.setdefault("components", {}).setdefault(kind, {})
        for name, component in components.items():
            known.setdefault(name, component)
    return document


class PublishInRootOpenApi:
    """A pure ASGI middleware that changes no request: it only hooks the root app's `openapi()` once."""

    def __init__(self, app, mounted: LazyApp, prefix: str):
        self.app, self.mounted, self.prefix = app, mounted, prefix
        self._published = False

    def _publish(self, root) -> None:
        generate = root.openapi

        def openapi() -> dict[str, Any]:
            if root.openapi_schema is None:
                root.openapi_schema = merge_openapi(generate(), self.mounted.openapi(), self.prefix)
            return root.openapi_schema

        root.openapi = openapi
        self._published = True

    async def __call__(self, scope, receive, send):
        root = scope.get("app")
        if not self._published and hasattr(root, "openapi_schema"):  # the API server's FastAPI app
            self._publish(root)
        await self.app(scope, receive, send)
