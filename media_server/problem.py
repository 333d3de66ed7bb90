"""An HTTP request that cannot be served, raised below the routes: its status, message and headers to answer with."""

from __future__ import annotations


class HttpProblem(Exception):
    """``status`` is the HTTP status the endpoint answers with (503 with ``Retry-After`` in ``headers``, ...)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
