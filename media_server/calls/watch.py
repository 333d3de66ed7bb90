"""Racing a peer's next message against the server ending its call (a shutdown, a storage failure).

An adapter that waits for its peer (a websocket frame, a TCP read, a gRPC request, RTP) follows its
:class:`~media_server.calls.lifecycle.LiveCall` with an :class:`EndWatch`; when the call ends first, by the server,
the watch raises :class:`CallEndedByServer` and the adapter tells its peer why (``ingest/farewell.py`` says how,
per protocol).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from media_server.calls.lifecycle import CallEnd, LiveCall

T = TypeVar("T")

#: The ends that come from the server's side of a call, not from its peer or its adapter.
SERVER_ENDS = frozenset({CallEnd.SERVER_SHUTDOWN, CallEnd.STORAGE_FAILED, CallEnd.KEY_REVOKED})

_SAID = {
    CallEnd.SERVER_SHUTDOWN: "server shutting down",
    CallEnd.STORAGE_FAILED: "storage failed: the call could not be stored",
    CallEnd.KEY_REVOKED: "API key revoked or expired",
    CallEnd.TOO_FAST: "audio arrived too far ahead of real time (calls.pacing)",
}


def said(reason: CallEnd) -> str:
    """What a peer is told, in words, when the server ended its call with ``reason``."""
    return _SAID.get(reason, f"the server ended the call: {reason.value}")


class CallEndedByServer(Exception):
    """The call ended (by the server) while its adapter waited for the peer."""

    def __init__(self, reason: CallEnd) -> None:
        super().__init__(reason.value)
        self.reason = reason


class EndWatch:
    """Races a peer's next message against the end of its call; before :meth:`follow`, it only times out.

    It also paces the call (``calls/pacing.py``): while the call's audio is ahead of real time beyond its burst
    allowance, the next message is not read until real time has caught up, so the peer's sends slow down (TCP's
    flow control); that wait does not count against ``within``."""

    def __init__(self) -> None:
        self._ended: asyncio.Future[CallEnd] | None = None
        self._call: LiveCall | None = None

    def follow(self, call: LiveCall) -> None:
        """Watch ``call`` from now on (once it is open)."""
        self.close()
        self._call = call
        self._ended = asyncio.ensure_future(_bound_end(call))

    async def next(self, receive: Awaitable[T], within: float | None = None) -> T:
        """What ``receive`` gives; :class:`CallEndedByServer` if the call ends first, ``TimeoutError`` after
        ``within`` seconds."""
        ended = self._ended
        if ended is None:
            return await asyncio.wait_for(receive, within)
        pace = self._call.pace_s() if self._call is not None else 0.0
        if pace > 0:  # ahead of real time: the next message waits (nothing is read, so the peer is held back)
            await asyncio.wait((ended,), timeout=pace)
            if ended.done() and not ended.cancelled():
                if asyncio.iscoroutine(receive):
                    receive.close()  # (never started)
                raise CallEndedByServer(ended.result())
        task = asyncio.ensure_future(receive)
        try:
            done, _ = await asyncio.wait((task, ended), timeout=within, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.wait((task,), timeout=1.0)  # the receive is over before the peer is spoken to
        if task.done() and not task.cancelled():
            task.exception()  # a message that came too late, or a failed receive: unused either way
        if ended.done() and not ended.cancelled():
            raise CallEndedByServer(ended.result())
        raise TimeoutError

    def close(self) -> None:
        if self._ended is not None:
            self._ended.cancel()
            self._ended = None
        self._call = None


async def _bound_end(call: LiveCall) -> CallEnd:
    """The reason, once the call's end begins (by whoever). The adapter's handle is bound to that end at once,
    while the lifecycle still holds its task (this runs before the end's first step): the adapter's own
    ``close()`` then waits for that end. Later, once the end is over, ``close()`` would start a second one."""
    reason = await call.ended()
    call.end(reason)
    return reason
