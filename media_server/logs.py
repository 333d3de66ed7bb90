"""What the server writes to its log: never a request's query string. API keys come as ``?token=`` (the dashboard
sends its websockets' that way), lookups carry a person (``?participant=``, ``?phone=``) and compatible streams
carry names and numbers in theirs (``/v1/listen?customer_phone=...``). uvicorn's access lines and websocket lines
keep the path and say that a query was there."""

from __future__ import annotations

import logging


def path_only(target: str) -> str:
    path, mark, _ = target.partition("?")
    return f"{path}?…" if mark else path


class NoQueryStrings(logging.Filter):
    """Rewrites a record's arguments that are request targets (``/path?query``) to the path alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                path_only(a) if isinstance(a, str) and a.startswith("/") and "?" in a else a for a in record.args
            )
        return True


def keep_queries_out_of_logs() -> None:
    """On uvicorn's loggers (after uvicorn configured its logging, which replaces their filters)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoQueryStrings) for f in logger.filters):
            logger.addFilter(NoQueryStrings())
