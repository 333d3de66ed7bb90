"""The key scheme in ``/openapi.json`` (and so on ``/docs``): every route takes an API key as a bearer token,
except the health checks; websockets also take it in the subprotocol or ``?token=`` (not describable in OpenAPI,
so said in the description, with the websocket endpoints, which ``docs/api.md`` describes). The bodies that routes
read themselves (``api/models.py``, ``BODIES``) are added to the components here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from media_server.api.models import BODIES

SCHEME = "apiKey"
PUBLIC = ("/health", "/health/live", "/health/ready")

DESCRIPTION = """Real-time call intelligence. Every route needs an API key (`media-server keys create`): \
`Authorization: Bearer msk_...`. Websockets take it the same way, or, from browsers that cannot set headers, \
as the subprotocols `token, msk_...` (`new WebSocket(url, ['token', key])`); `?token=` still works for old \
clients but puts the key in URLs. Roles: admin, manager, rep, ingest.

Errors answer `{"detail": "..."}` with the status (401: no valid key; 403: the key's role may not).

**Websockets** (not operations OpenAPI can describe; see `docs/api.md` for their messages and close codes):

- `/v1/events` (the team's calls) and `/v1/calls/{call_id}/events` (one call): the event stream, JSON; \
resume with `?after=<event id>`.
- `/v1/ingest/twilio`, `/v1/ingest/telnyx`: Twilio Media Streams / Telnyx media streaming.
- `/v1/ingest/l16`: raw 16-bit PCM (jambonz `listen`, FreeSWITCH mod_audio_fork / mod_audio_stream).
- `/v1/listen`: Deepgram's live streaming API (its SDKs connect unmodified).

**gRPC** (port 50051 by default, same keys as `authorization: Bearer` metadata): `media_server.v1.MediaServer` \
(stream a call, subscribe to events, calls, consent, team configuration) and NVIDIA Riva's \
`nvidia.riva.asr.RivaSpeechRecognition`; see `docs/api.md`."""


def declare_key_scheme(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes)
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {})[SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "msk_...",
                "description": "an API key of the team (admin, manager, rep or ingest)",
            }
            schemas = components.setdefault("schemas", {})
            for model in BODIES:
                body = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in body.pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
                schemas.setdefault(model.__name__, body)
            schema["security"] = [{SCHEME: []}]
            for path in PUBLIC:
                for operation in schema.get("paths", {}).get(path, {}).values():
                    operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
