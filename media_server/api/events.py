"""Event websockets: ``/v1/calls/{call_id}/events`` (one call) and ``/v1/events`` (the team's calls).

Resume with ``?after=<last id seen>``: every event after it is sent once (from the store, also across restarts;
with ``events.bus = "redis"`` in the order every server sees them, on any server; interim transcripts are not
replayed), then live ones. A subscriber that stops reading is dropped
(close code 1013 and a reason saying how to resume); the call it watched never waits for it.

The key: ``Authorization: Bearer KEY``, or from a browser the subprotocols ``token, KEY`` (answered ``token``), or
``?token=KEY`` (older clients). When the key is revoked or expires the subscription is closed within a second with
4401 ``API key revoked or expired`` (``auth/sessions.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketState

from media_server.api.audit import audited, remote_of
from media_server.api.auth import services_of
from media_server.auth.http import auth_subprotocol, presented_key
from media_server.auth.sessions import CLOSE_REVOKED, REVOKED
from media_server.bus import SubscriberTooSlow
from media_server.events import to_json

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
SEND_TIMEOUT_S = 10.0


@router.websocket("/v1/calls/{call_id}/events")
async def call_events(ws: WebSocket, call_id: str) -> None:
    await _serve(ws, call_id)


@router.websocket("/v1/events")
async def team_events(ws: WebSocket) -> None:
    await _serve(ws, None)


async def _serve(ws: WebSocket, call_id: str | None) -> None:
    services = services_of(ws)
    await ws.accept(subprotocol=auth_subprotocol(ws))  # (a browser's key comes as a subprotocol)
    key = await services.authenticate(presented_key(ws))
    if key is None or not key.can("read"):
        await ws.close(CLOSE_POLICY, "unauthorized: missing or invalid API key")
        return
    after_raw = ws.query_params.get("after")
    after: int | None = None
    if after_raw is not None:
        if not after_raw.isdigit():
            await ws.close(CLOSE_POLICY, "after must be an event id (a non-negative integer)")
            return
        after = int(after_raw)
    await audited(
        services,
        key,
        "subscribe_events",
        call_id=call_id or "",
        target="" if after is None else f"after={after}",
        via="websocket",
        remote=remote_of(ws),
    )
    subscription = services.journal.subscribe(key.team, call_id, after)
    last_id = after or 0
    reader = asyncio.create_task(_drain_client(ws))
    reader.add_done_callback(lambda _task: subscription.close())
    revoked: list[bool] = []

    def revoke() -> None:  # the key was revoked: the subscription ends, the client is told why
        revoked.append(True)
        subscription.close()

    held = services.sessions.hold(key.id, revoke)
    try:
        async for event in subscription:
            if reader.done() or revoked:
                break
            await asyncio.wait_for(ws.send_text(to_json(event)), SEND_TIMEOUT_S)
            last_id = event.id or last_id  # (the last one seen: on a shared bus ids are not in order)
        if revoked:
            await _close(ws, CLOSE_REVOKED, REVOKED)
    except SubscriberTooSlow as exc:
        log.warning("dropping slow subscriber (team %s, call %s): %s", key.team, call_id, exc)
        await _close(ws, CLOSE_TRY_AGAIN, f"subscriber too slow; reconnect with ?after={last_id}")
    except TimeoutError:
        log.warning("dropping stalled subscriber (team %s, call %s)", key.team, call_id)
        await _close(ws, CLOSE_TRY_AGAIN, f"subscriber too slow; reconnect with ?after={last_id}")
    except Exception:  # the client went away mid-send
        pass
    finally:
        held.release()
        subscription.close()
        reader.cancel()


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) what the client sends, so that its close is noticed."""
    with contextlib.suppress(Exception):
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    if ws.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code, reason), 2.0)
