"""A Deepgram request refused, as Deepgram answers it: an HTTP status with ``{err_code, err_msg, request_id}`` and the
``dg-error`` and ``dg-request-id`` headers; the streaming API's handshake and the pre-recorded API alike."""

from __future__ import annotations

from media_server.calls.lifecycle import CallConflict, CallRefused, CallsFull
from media_server.ingest.messages import CLOSE_POLICY, CLOSE_TRY_AGAIN


class Refused(Exception):
    """A request refused with an HTTP status; ``close_code``: the close frame where a websocket handshake cannot be
    answered with HTTP."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        close_code: int = CLOSE_POLICY,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.close_code = close_code

    def body(self, request_id: str) -> dict[str, str]:
        return {"err_code": self.code, "err_msg": self.message, "request_id": request_id}

    def response_headers(self, request_id: str) -> dict[str, str]:
        # (printable ASCII only: the message may quote a query string, and CR/LF would split the header)
        header = "".join(c if " " <= c < "\x7f" else "?" for c in self.message)[:500]
        return {"dg-error": header, "dg-request-id": request_id, **self.headers}


def refusal(refused: CallRefused) -> Refused:
    """What the lifecycle's refusal to open a call is told as: 503 with Retry-After when the server is full (or
    takes no calls for now), 409 for a call id in use, 403 otherwise."""
    if isinstance(refused, CallsFull):
        return Refused(
            503,
            "SERVICE_UNAVAILABLE",
            f"try again later (in {refused.retry_after_s} s): {refused.message}",
            {"Retry-After": str(refused.retry_after_s)},
            CLOSE_TRY_AGAIN,
        )
    if isinstance(refused, CallConflict):
        return Refused(409, "Conflict", refused.message)
    return Refused(403, "INSUFFICIENT_PERMISSIONS", refused.message)
