"""What the server writes to its log: never a request's query string. API keys come as ``?token=`` (the dashboard
sends its websockets' that way), lookups carry a person (``?participant=``, ``?phone=``) and compatible streams
carry names and numbers in theirs (``/v1/listen?customer_phone=...``). uvicorn's access lines and websocket lines
keep the path and say that a query was there."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime
from typing import Any


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


# -- which call a line is about --------------------------------------------------------------------------------------

_CALL: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("media_server_call", default=None)


def about_call(call_id: str, team: str) -> None:
    """Every line logged from here on in this task, and in the tasks it starts from now on (they copy its context),
    is about this call: the JSON format gives them ``call_id`` and ``team``."""
    _CALL.set((call_id, team))


class CallContext(logging.Filter):
    """Puts ``call_id`` and ``team`` on a record logged while a call's tasks run (:func:`about_call`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = _CALL.get()
        if call is not None and not hasattr(record, "call_id"):
            record.call_id, record.team = call
        return True


# -- formats ---------------------------------------------------------------------------------------------------------

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLines(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``; ``call_id`` and
    ``team`` on a line about a call; ``exception`` (the traceback's text) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("call_id", "team"):
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(level: str, log_format: str = "text") -> None:
    """The root logger's one handler (stderr) in ``text`` or ``json``; Python's warnings go through it too."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(CallContext())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)


def uvicorn_log_config(log_format: str) -> dict[str, Any] | None:
    """``uvicorn.Config(log_config=...)``: in ``json``, uvicorn's loggers (its access lines too) keep no handlers of
    their own and reach the root's (None: uvicorn configures nothing); in ``text``, uvicorn's own format."""
    if log_format != "json":
        from uvicorn.config import LOGGING_CONFIG

        return LOGGING_CONFIG
    return None
