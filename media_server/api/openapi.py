"""The key scheme in ``/openapi.json`` (and so on ``/docs``): every route takes an API key as a bearer token,
except the health checks; websockets also take it in the subprotocol or ``?token=`` (not describable in OpenAPI,
so said in the description)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEME = "apiKey"
PUBLIC = ("/health", "/health/ready")

DESCRIPTION = (
    "Real-time call intelligence. Every route needs an API key (`media-server keys create`): "
    "`Authorization: Bearer msk_...`. Websockets take it the same way, or, from browsers that cannot set headers, "
    "as the subprotocols `token, msk_...` (`new WebSocket(url, ['token', key])`); `?token=` still works for old "
    "clients but puts the key in URLs. Roles: admin, manager, rep, ingest."
)


def declare_key_scheme(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "msk_...",
                "description": "an API key of the team (admin, manager, rep or ingest)",
            }
            schema["security"] = [{SCHEME: []}]
            for path in PUBLIC:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
