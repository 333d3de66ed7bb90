"""A team configuration that does not validate, told back to whoever sent it (REST ``PUT /v1/team/config`` and
gRPC ``SetTeamConfig``): one readable line per problem."""

from __future__ import annotations

from pydantic import ValidationError


def describe(exc: ValidationError) -> list[str]:
    """One readable line per problem: where it is and what is wrong (``trackers[0].category: ...``)."""
    lines = []
    for error in exc.errors():
        where = ""
        for part in error["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where or 'config'}: {message}")
    return lines
