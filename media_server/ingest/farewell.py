"""What a peer is told when the server, not the peer, ends its call: a shutdown (``server_shutdown``) or a call
whose events could not be stored (``storage_failed``). One table for every adapter:

========================  ======================================================  ===================  ===========
reason                    websocket close (Twilio, Telnyx, L16, Deepgram)         SIP BYE ``Reason``   gRPC (rpc/)
========================  ======================================================  ===================  ===========
``server_shutdown``       1001 ``server shutting down``                           cause 503            UNAVAILABLE
``storage_failed``        1011 ``storage failed: the call could not be stored``   cause 500            UNAVAILABLE
``key_revoked``           4401 ``API key revoked or expired``                     cause 403            UNAUTHENTICATED
``too_fast``              1008 ``audio arrived too far ahead of real time...``    cause 400            (below)
========================  ======================================================  ===================  ===========

A ``too_fast`` call (``calls/pacing.py``) ends its gRPC stream with RESOURCE_EXHAUSTED.

AudioSocket has no codes (its terminate message, then the connection is closed), WHIP closes the peer connection.

An adapter races its peer's next message against :meth:`LiveCall.ended` with an :class:`EndWatch`
(``calls/watch.py``): when the server ends the call first, the watch raises :class:`ServerEnded` (a
:class:`StreamEnded` carrying the :class:`Farewell`), and the adapter tells its peer and closes the call with the
server's reason (the first end of a call is the one kept). StreamCall and Riva are told in ``rpc/relay.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from media_server.auth.sessions import CLOSE_REVOKED
from media_server.calls import watch
from media_server.calls.lifecycle import CallEnd
from media_server.calls.watch import SERVER_ENDS, CallEndedByServer, said
from media_server.ingest.messages import CLOSE_GOING_AWAY, CLOSE_INTERNAL, CLOSE_POLICY, StreamEnded

__all__ = ["SERVER_ENDS", "EndWatch", "Farewell", "ServerEnded", "farewell"]

T = TypeVar("T")


@dataclass(frozen=True)
class Farewell:
    """What the peer of a call the server ended is told, in each protocol's terms."""

    reason: CallEnd
    close_code: int  # websocket close code (RFC 6455)
    text: str  # websocket close reason
    sip_cause: int  # the SIP status code in the BYE's Reason header (RFC 3326)
    sip_text: str

    @property
    def sip_reason(self) -> str:
        """The value of the BYE's ``Reason`` header."""
        return f'SIP;cause={self.sip_cause};text="{self.sip_text}"'


_FAREWELLS = {
    CallEnd.SERVER_SHUTDOWN: Farewell(
        CallEnd.SERVER_SHUTDOWN, CLOSE_GOING_AWAY, said(CallEnd.SERVER_SHUTDOWN), 503, "server shutting down"
    ),
    CallEnd.STORAGE_FAILED: Farewell(
        CallEnd.STORAGE_FAILED, CLOSE_INTERNAL, said(CallEnd.STORAGE_FAILED), 500, "storage failed"
    ),
    CallEnd.KEY_REVOKED: Farewell(CallEnd.KEY_REVOKED, CLOSE_REVOKED, said(CallEnd.KEY_REVOKED), 403, "key revoked"),
    CallEnd.TOO_FAST: Farewell(
        CallEnd.TOO_FAST, CLOSE_POLICY, said(CallEnd.TOO_FAST), 400, "media faster than real time"
    ),
}


def farewell(reason: CallEnd) -> Farewell:
    """What the peer is told when the server ended its call with ``reason``."""
    found = _FAREWELLS.get(reason)
    return found if found is not None else Farewell(reason, CLOSE_INTERNAL, said(reason), 500, said(reason))


class ServerEnded(StreamEnded):
    """The server ended the call while its adapter waited for the peer (see :class:`EndWatch`)."""

    def __init__(self, farewell: Farewell) -> None:
        super().__init__(farewell.reason, farewell.close_code, farewell.text)
        self.farewell = farewell


class EndWatch(watch.EndWatch):
    """:class:`media_server.calls.watch.EndWatch` for ingest adapters: the server's end is a :class:`ServerEnded`
    (a :class:`StreamEnded`, which the adapters already turn into a close)."""

    async def next(self, receive: Awaitable[T], within: float | None = None) -> T:
        try:
            return await super().next(receive, within)
        except CallEndedByServer as exc:
            raise ServerEnded(farewell(exc.reason)) from None
