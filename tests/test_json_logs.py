"""``log_format = "json"`` (``serve --log-format json``) as a log shipper reads it: a real `media-server serve`, a
real Twilio stream of real speech, REST and websocket requests with keys in their query strings; then every line
of what the process wrote is one JSON object (uvicorn's access lines too), every line about the call says its
``call_id`` and ``team``, and no query string is there (``logs.NoQueryStrings`` works in both formats)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from media_server.cli import _settings, build_parser
from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from media_server.logs import CallContext, JsonLines, about_call
from tests.conftest import Server, collect_events, start_server, stop_server
from tests.speech import program, tel8k

GRANTED = {"repConsent": "granted", "customerConsent": "granted"}


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("json-logs"), {"MEDIA_SERVER_LOG_FORMAT": "json"})
    yield srv
    stop_server(srv)


def _lines(server: Server) -> list[dict[str, Any]]:
    lines = []
    for number, text in enumerate(server.log().splitlines(), 1):
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            raise AssertionError(f"line {number} is not JSON: {text!r}") from None
        assert isinstance(line, dict), text
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        lines.append(line)
    return lines


@pytest.mark.e2e
async def test_every_line_is_json_and_a_calls_lines_say_which_call(json_server: Server) -> None:
    admin, ingest = json_server.keys["admin"], json_server.keys["ingest"]
    call_id = "CA-json-" + uuid.uuid4().hex[:8]
    speech = program(tel8k()[:2], gap_s=0.8, lead_s=0.3)
    recording = Recording([speech.pcm], speech.sample_rate)
    watcher = asyncio.create_task(collect_events(f"{json_server.ws_url}/v1/events?token={admin}", timeout=8))
    result = await stream_call(recording, json_server.ws_url, "twilio", ingest, call_id=call_id, metadata=GRANTED)
    assert result.close_code == 1000
    await watcher
    async with httpx.AsyncClient() as http:
        stored = await http.get(f"{json_server.url}/v1/calls/{call_id}?token={admin}&phone=5558675309")
    assert stored.status_code == 200

    lines = _lines(json_server)
    # (an access line of a REST request naming the call is about that request: it carries no call fields)
    about = [line for line in lines if call_id in line["message"] and line["logger"] != "uvicorn.access"]
    assert len(about) >= 2, "its start and its end at least"
    for line in about:
        assert (line.get("call_id"), line.get("team")) == (call_id, "acme"), line
    assert any(line["logger"] == "uvicorn.access" for line in lines), "uvicorn's access lines are JSON too"
    text = json_server.log()
    for secret in (admin, ingest, "5558675309", "token="):
        assert secret not in text, f"{secret!r} reached the log"
    assert any("/v1/events?…" in line["message"] for line in lines), "the path stays, the query is marked"


def test_an_exception_is_in_its_line_and_the_call_is_named() -> None:
    formatter, context = JsonLines(), CallContext()
    about_call("CA-x", "acme")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("media_server.x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info())
    context.filter(record)
    line = json.loads(formatter.format(record))
    assert (line["message"], line["level"], line["call_id"], line["team"]) == ("failed here", "error", "CA-x", "acme")
    assert "ValueError: boom" in line["exception"] and "\n" not in formatter.format(record)


def test_serve_takes_log_format() -> None:
    args = build_parser().parse_args(["serve", "--log-format", "json"])
    assert _settings(args).log_format == "json"
    assert _settings(build_parser().parse_args(["serve"])).log_format == "text"
