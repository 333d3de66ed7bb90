"""Requests about a live call that another server holds: handed on to it (the server that holds a call applies
what changes it: consent, disposition), or answered with where to go (listen-in: ``307`` to that server, which
the WebRTC offer follows)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import HTTPException, Request, Response

log = logging.getLogger(__name__)

FORWARDED = "x-media-server-forwarded"  # a request handed on once is never handed on again
_HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "upgrade", "te"}


def target(request: Request, url: str) -> str:
    return url.rstrip("/") + request.url.path + (f"?{request.url.query}" if request.url.query else "")


def held_elsewhere(request: Request, node: str, url: str) -> None:
    """Raise what to answer when the server holding the call cannot be asked (it stopped: taken over soon)."""
    if not url or request.headers.get(FORWARDED):
        raise HTTPException(
            503, f"the call is live on server {node!r}, which does not answer now; try again", {"Retry-After": "5"}
        )


async def forward(request: Request, node: str, url: str, timeout_s: float = 10.0) -> Response:
    """The answer of server ``node`` (at ``url``) to the same request."""
    held_elsewhere(request, node, url)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
    headers[FORWARDED] = "1"
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            answer = await client.request(
                request.method, target(request, url), content=await request.body(), headers=headers
            )
    except httpx.HTTPError as exc:
        log.warning("server %s (%s) did not answer a request about its call: %s", node, url, exc)
        raise HTTPException(
            503, f"the call is live on server {node!r}, which does not answer now; try again", {"Retry-After": "5"}
        ) from None
    kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "location", "retry-after")}
    return Response(answer.content, answer.status_code, headers=kept)


def redirect(request: Request, node: str, url: str) -> Response:
    """``307`` to the server holding the call (the client repeats its request there, body and all)."""
    held_elsewhere(request, node, url)
    return Response(status_code=307, headers={"Location": target(request, url), "X-Media-Server-Node": node})


async def ask(node: str, url: str, method: str, path: str, key: str, body: object) -> tuple[int, Any]:
    """Server ``node``'s answer (status, JSON) to a REST request made with the caller's key (for the gRPC API,
    whose calls held elsewhere go the same way). Status 503 where it does not answer."""
    if not url:
        return 503, {"detail": f"the call is live on server {node!r}, which does not answer now; try again"}
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            answer = await client.request(
                method, url.rstrip("/") + path, json=body, headers={"Authorization": f"Bearer {key}", FORWARDED: "1"}
            )
    except httpx.HTTPError as exc:
        log.warning("server %s (%s) did not answer a request about its call: %s", node, url, exc)
        return 503, {"detail": f"the call is live on server {node!r}, which does not answer now; try again"}
    try:
        return answer.status_code, answer.json()
    except ValueError:
        return answer.status_code, {"detail": answer.text}
