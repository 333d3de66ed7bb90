"""``GET /metrics`` as a Prometheus scraper sees it: a real `media-server serve`, a real Twilio stream of real speech,
the text parsed with prometheus-client's own parser. During the call: one live twilio call; after it: finals'
latencies observed, events published, store commits timed, decode batches counted; refusals counted by reason
(a wrong key, a protocol over its limit); only an admin key or ``metrics.token`` may scrape."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from media_server.client.stream import stream_call
from media_server.client.wav import Recording
from tests.conftest import Server, start_server, stop_server
from tests.speech import program, tel8k

pytestmark = pytest.mark.e2e

GRANTED = {"repConsent": "granted", "customerConsent": "granted"}
TOKEN = "scraper-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"MEDIA_SERVER_CALLS__MAX_BY_SOURCE__L16": "0", "MEDIA_SERVER_METRICS__TOKEN": TOKEN}
    srv = start_server(tmp_path_factory.mktemp("prometheus"), env)
    yield srv
    stop_server(srv)


def scrape(server: Server, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, labels) -> value."""
    answer = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    return samples


async def _until(predicate: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def test_only_an_admin_key_or_the_metrics_token_may_scrape(scraped: Server) -> None:
    url = f"{scraped.url}/metrics"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
    rep = httpx.get(url, headers={"Authorization": f"Bearer {scraped.keys['rep']}"})
    assert rep.status_code == 401, "a rep key does not see the server's figures"
    assert httpx.get(url, headers={"Authorization": f"Bearer {scraped.keys['admin']}"}).status_code == 200
    assert httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


async def test_a_call_shows_live_then_its_finals_latency_and_events(scraped: Server) -> None:
    before = scrape(scraped)
    assert before["media_server_live_calls", (("source", "twilio"),)] == 0
    assert before["media_server_live_calls", (("source", "siprec"),)] == 0, "every source has a series from the start"
    speech = program(tel8k()[:3], gap_s=0.8, lead_s=0.3)
    recording = Recording([speech.pcm], speech.sample_rate)
    key = scraped.keys["ingest"]
    call = asyncio.create_task(stream_call(recording, scraped.ws_url, "twilio", key, metadata=GRANTED, speed=2))
    live = ("media_server_live_calls", (("source", "twilio"),))
    await _until(lambda: call.done() or scrape(scraped)[live] == 1, "the call to show as live")
    assert not call.done(), "seen live during the call"
    result = await call
    assert result.close_code == 1000
    await _until(lambda: scrape(scraped)[live] == 0, "the call to end")

    after = scrape(scraped)
    latency = after["media_server_final_latency_seconds_count", ()] - before.get(
        ("media_server_final_latency_seconds_count", ()), 0
    )
    assert latency >= 3, "a final's latency for each utterance"
    assert after["media_server_final_latency_seconds_sum", ()] > 0
    assert (
        after["media_server_final_latency_seconds_bucket", (("le", "+Inf"),)]
        == after["media_server_final_latency_seconds_count", ()]
    )
    assert after["media_server_events_total", ()] > before["media_server_events_total", ()]
    assert after["media_server_store_write_seconds_count", ()] > before["media_server_store_write_seconds_count", ()]
    assert after["media_server_decode_batch_size_count", ()] > 0
    assert after["media_server_decode_batch_size_sum", ()] >= after["media_server_decode_batch_size_count", ()]
    assert after["media_server_decode_batch_seconds_sum", ()] > 0
    batches = after["media_server_decode_batch_size_count", ()]  # (histograms: one observation per batch)
    assert after["media_server_decode_batch_size_bucket", (("le", "+Inf"),)] == batches
    assert after["media_server_decode_batch_seconds_bucket", (("le", "+Inf"),)] == batches
    assert after["media_server_decode_real_time_factor", ()] > 0
    assert after["media_server_decode_queue_depth", ()] >= 0
    assert after["media_server_calls_ended_total", (("reason", "stop"),)] >= 1
    assert ("media_server_event_loop_lag_seconds", (("q", "0.95"),)) in after
    assert after["media_server_http_connections_refused_total", (("reason", "cap"),)] == 0


async def test_refusals_are_counted_by_reason(scraped: Server) -> None:
    speech = program(tel8k()[:1], gap_s=0.3, lead_s=0.1)
    recording = Recording([speech.pcm], speech.sample_rate)
    for protocol, key in (
        ("twilio", "msk_" + "x" * 40),
        ("l16", scraped.keys["ingest"]),
    ):  # a wrong key; l16: 0 allowed
        try:
            await asyncio.wait_for(stream_call(recording, scraped.ws_url, protocol, key, metadata=GRANTED), 30)
        except Exception:  # (refused: how each protocol closes is its own tests' business)
            pass
    samples = scrape(scraped)
    assert samples["media_server_call_refusals_total", (("reason", "unauthorized"),)] >= 1
    assert samples["media_server_call_refusals_total", (("reason", "source_limit"),)] >= 1
