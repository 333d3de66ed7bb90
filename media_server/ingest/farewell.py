"""What a peer is told when the server, not the peer, ends its call: a shutdown (``server_shutdown``) or a call
whose events could not be stored (``storage_failed``). One table for every adapter:

========================  ======================================================  ===================  ===========
reason                    websocket close (Twilio, Telnyx, L16, Deepgram)         SIP BYE ``Reason``   gRPC status
========================  ======================================================  ===================  ===========
``server_shutdown``       1001 ``server shutting down``                           cause 503            UNAVAILABLE
``storage_failed``        1011 ``storage failed: the call could not be stored``   cause 500            UNAVAILABLE
========================  ======================================================  ===================  ===========

AudioSocket has no codes (its terminate message, then the connection is closed), WHIP closes the peer connection.

An adapter races its peer's next message against :meth:`LiveCall.ended` with an :class:`EndWatch`: when the
server ends the call first, the watch raises :class:`ServerEnded` (a :class:`StreamEnded` carrying the
:class:`Farewell`), and the adapter tells its peer and closes the call with the server's reason (the first end of
a call is the one kept).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from media_server.calls.lifecycle import CallEnd, LiveCall
from media_server.ingest.messages import CLOSE_GOING_AWAY, CLOSE_INTERNAL, StreamEnded

T = TypeVar("T")

#: The ends that come from the server's side of a call, not from its peer or its adapter.
SERVER_ENDS = frozenset({CallEnd.SERVER_SHUTDOWN, CallEnd.STORAGE_FAILED})


@dataclass(frozen=True)
class Farewell:
    """What the peer of a call the server ended is told, in each protocol's terms."""

    reason: CallEnd
    close_code: int  # websocket close code (RFC 6455)
    text: str  # websocket close reason
    sip_cause: int  # the SIP status code in the BYE's Reason header (RFC 3326)
    sip_text: str
    grpc_status: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE

    @property
    def sip_reason(self) -> str:
        """The value of the BYE's ``Reason`` header."""
        return f'SIP;cause={self.sip_cause};text="{self.sip_text}"'

    @property
    def grpc_message(self) -> str:
        return f"{self.text} (the call ended: {self.reason.value}; what was transcribed is stored)"


_FAREWELLS = {
    CallEnd.SERVER_SHUTDOWN: Farewell(
        CallEnd.SERVER_SHUTDOWN, CLOSE_GOING_AWAY, "server shutting down", 503, "server shutting down"
    ),
    CallEnd.STORAGE_FAILED: Farewell(
        CallEnd.STORAGE_FAILED, CLOSE_INTERNAL, "storage failed: the call could not be stored", 500, "storage failed"
    ),
}


def farewell(reason: CallEnd) -> Farewell:
    """What the peer is told when the server ended its call with ``reason``."""
    found = _FAREWELLS.get(reason)
    if found is not None:
        return found
    text = f"the server ended the call: {reason.value}"
    return Farewell(reason, CLOSE_INTERNAL, text, 500, text)


async def _bound_end(call: LiveCall) -> CallEnd:
    """The reason, once the call's end begins (by whoever). The adapter's handle is bound to that end at once,
    while the lifecycle still holds its task (this runs before the end's first step): the adapter's own
    ``close()`` then waits for that end. Later, once the end is over, ``close()`` would start a second one."""
    reason = await call.ended()
    call.end(reason)
    return reason


class ServerEnded(StreamEnded):
    """The server ended the call while its adapter waited for the peer (see :class:`EndWatch`)."""

    def __init__(self, farewell: Farewell) -> None:
        super().__init__(farewell.reason, farewell.close_code, farewell.text)
        self.farewell = farewell


class EndWatch:
    """Races a peer's next message against the server ending its call; before :meth:`follow`, it only times out."""

    def __init__(self) -> None:
        self._ended: asyncio.Future[CallEnd] | None = None

    def follow(self, call: LiveCall) -> None:
        """Watch ``call`` from now on (once it is open)."""
        self.close()
        self._ended = asyncio.ensure_future(_bound_end(call))

    async def next(self, receive: Awaitable[T], within: float | None = None) -> T:
        """What ``receive`` gives; :class:`ServerEnded` if the server ends the call first, ``TimeoutError`` after
        ``within`` seconds."""
        ended = self._ended
        if ended is None:
            return await asyncio.wait_for(receive, within)
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
            raise ServerEnded(farewell(ended.result()))
        raise TimeoutError

    def close(self) -> None:
        if self._ended is not None:
            self._ended.cancel()
            self._ended = None
