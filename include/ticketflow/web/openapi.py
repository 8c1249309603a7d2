"""One OpenAPI document: the mounted Ticketflow app's routes listed in the API server's own `/openapi.json`.

FastAPI leaves a mounted app out of its parent's document. This root
middleware sees the API server's app on the first ASGI call (the lifespan
startup) and extends its document generator once, so `/openapi.json` and
`/docs` show `/ticketflow/...` beside `/api/v2/...`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


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

    def __init__(self, app, mounted: FastAPI, prefix: str):
        self.app, self.mounted, self.prefix = app, mounted, prefix
        self._published = False

    def _publish(self, root: FastAPI) -> None:
        generate = root.openapi

        def openapi() -> dict[str, Any]:
            if root.openapi_schema is None:
                root.openapi_schema = merge_openapi(generate(), self.mounted.openapi(), self.prefix)
            return root.openapi_schema

        root.openapi = openapi
        self._published = True

    async def __call__(self, scope, receive, send):
        if not self._published and isinstance(scope.get("app"), FastAPI):
            self._publish(scope["app"])
        await self.app(scope, receive, send)
