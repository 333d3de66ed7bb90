"""``GET /metrics``: the server's figures in Prometheus' text format, for a platform engineer's scraper.

Most are read when scraped from what the server keeps anyway (the figures ``/v1/status`` shows: the decode
scheduler's, the journal's, the event loop's lag, the live calls); two are observed as they happen, as histograms:
a final's latency (from the arrival of the end of its utterance's audio to the final handed to the journal, which
stores and publishes it in its next group commit) and the journal's commits (store write latency). Every server has
its own :class:`~prometheus_client.CollectorRegistry` (several servers may run in one process: the tests).

Access (``metrics.*``): ``Authorization: Bearer`` with ``metrics.token`` or any admin API key; ``metrics.public``
answers without one. The figures name no team, call or person, but they tell a server's load and its sources to
whoever asks, and everything else on this server wants a key; Prometheus sends a bearer token natively
(``authorization: {credentials_file: ...}`` in a scrape config).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import TYPE_CHECKING

from fastapi import Request, Response
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from media_server import __version__
from media_server.auth.keys import Role

if TYPE_CHECKING:
    from media_server.config import MetricsSettings
    from media_server.connections import ConnectionLimits
    from media_server.services import Services

# The protocols a call comes by (``Call.source``): each has a series from the start, at 0 while none is live.
SOURCES = ("twilio", "telnyx", "l16", "deepgram", "riva", "grpc", "siprec", "whip", "audiosocket")

_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32)
_BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServerMetrics:
    """One server's registry: the histograms observed as things happen, and a collector for the rest."""

    def __init__(self, settings: MetricsSettings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=True)
        self.final_latency = Histogram(
            "media_server_final_latency_seconds",
            "From the arrival of the end of an utterance's audio to its final transcript handed to the journal",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.store_write = Histogram(
            "media_server_store_write_seconds",
            "One group commit of the journal (events and their calls' rows in one transaction)",
            buckets=_COMMIT_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "media_server_decode_batch_size",
            "Decodes per batch of the in-process recogniser (utterances of different calls in one model call)",
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_time = Histogram(
            "media_server_decode_batch_seconds",
            "Compute time of one batch of the in-process recogniser",
            buckets=_BATCH_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.collector = _ServerCollector()
        self.registry.register(self.collector)

    def attach(self, services: Services, limits: ConnectionLimits | None) -> None:
        """Watch this server's services (once they started) and its HTTP connection limits."""
        self.collector.services, self.collector.limits = services, limits
        services.calls.services.final_latency = self.final_latency.observe
        services.journal.on_commit = self.store_write.observe
        services.scheduler.on_batch = self._batch  # (recognition workers report theirs in their own Status)

    def _batch(self, decodes: int, seconds: float) -> None:
        self.batch_size.observe(decodes)
        self.batch_time.observe(seconds)

    def detach(self) -> None:
        self.collector.services = None

    def allowed(self, request: Request) -> bool | None:
        """True: the bearer may scrape; False: it may not; None: ask the key store (an admin key?)."""
        if self.settings.public:
            return True
        token = _bearer(request)
        if not token:
            return False
        wanted = self.settings.token
        if wanted is not None and hmac.compare_digest(token.encode(), wanted.get_secret_value().encode()):
            return True
        return None

    async def scrape(self, request: Request) -> Response:
        allowed = self.allowed(request)
        if allowed is None:
            services = self.collector.services
            key = await services.authenticate(_bearer(request)) if services is not None else None
            allowed = key is not None and key.role is Role.ADMIN
        if not allowed:
            return Response(
                "an admin API key or metrics.token as a bearer token\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
                media_type="text/plain",
            )
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class _ServerCollector(Collector):
    """What ``/v1/status`` shows, read at scrape time."""

    def __init__(self) -> None:
        self.services: Services | None = None
        self.limits: ConnectionLimits | None = None

    def describe(self) -> list[Metric]:
        return []  # (unchecked: the series depend on what runs)

    def collect(self) -> Iterator[Metric]:
        services = self.services
        info = GaugeMetricFamily("media_server_info", "This server", labels=["version", "model", "device"])
        if services is not None:
            engine = services.scheduler.engine
            info.add_metric([__version__, engine.name, engine.device], 1)
        else:
            info.add_metric([__version__, "", ""], 1)
        yield info
        if self.limits is not None:
            refused = CounterMetricFamily(
                "media_server_http_connections_refused",
                "HTTP connections closed by the server's limits: over http.max_connections (cap), headers too slow",
                labels=["reason"],
            )
            refused.add_metric(["cap"], self.limits.refused)
            refused.add_metric(["header_timeout"], self.limits.timed_out)
            yield refused
        if services is None:
            return
        yield from _calls(services)
        yield from _decoding(services)
        yield from _journal(services)
        lag = services.loop_lag.stats()
        loop = GaugeMetricFamily(
            "media_server_event_loop_lag_seconds", "How late the event loop ran its timers, last minute", labels=["q"]
        )
        for label, name in (("0.5", "lagMsP50"), ("0.95", "lagMsP95"), ("1", "lagMsMax")):
            if lag[name] is not None:
                loop.add_metric([label], lag[name] / 1000)
        yield loop


def _calls(services: Services) -> Iterator[Metric]:
    calls = services.calls
    live = GaugeMetricFamily("media_server_live_calls", "Calls live on this server, by protocol", labels=["source"])
    counts = dict.fromkeys(SOURCES, 0)
    for call in calls.live.values():
        counts[call.source] = counts.get(call.source, 0) + 1
    for source, count in counts.items():
        live.add_metric([source], count)
    yield live
    refusals = CounterMetricFamily(
        "media_server_call_refusals",
        "Calls refused when they opened, by reason (at_capacity: calls.max_live; source_limit: "
        "calls.max_by_source; unavailable: shutting down or the store failing; unauthorized, forbidden, "
        "call_conflict, invalid_call_id)",
        labels=["reason"],
    )
    for reason, count in sorted(calls.refusals.items()):
        refusals.add_metric([reason], count)
    yield refusals
    ended = CounterMetricFamily("media_server_calls_ended", "Calls ended, by reason (too_fast, ...)", labels=["reason"])
    for reason, count in sorted(calls.endings.items()):
        ended.add_metric([reason], count)
    yield ended


def _decoding(services: Services) -> Iterator[Metric]:
    stats = services.scheduler.stats()
    yield GaugeMetricFamily("media_server_decode_queue_depth", "Decodes waiting for the device", stats.queue_depth)
    yield GaugeMetricFamily(
        "media_server_decode_real_time_factor",
        "Compute seconds per second of audio decoded, since the start",
        stats.real_time_factor,
    )
    yield GaugeMetricFamily(
        "media_server_decode_busy_ratio", "Share of the last minute the device spent decoding", stats.busy_fraction
    )
    yield GaugeMetricFamily("media_server_decode_streams", "Call channels being transcribed now", stats.streams)
    yield CounterMetricFamily("media_server_finals", "Final transcripts decoded", stats.finals)
    yield CounterMetricFamily(
        "media_server_interims_dropped", "Interim decodes dropped (too old)", stats.interims_dropped
    )


def _journal(services: Services) -> Iterator[Metric]:
    journal = services.journal
    yield CounterMetricFamily(
        "media_server_events", "Events published (stored first, but interim transcripts)", journal.committed_events
    )
    yield CounterMetricFamily("media_server_events_stored", "Events stored in the event log", journal.stored_events)
    yield GaugeMetricFamily("media_server_store_pending_events", "Events waiting to be stored", journal.pending)
    yield GaugeMetricFamily("media_server_store_healthy", "1 while the store takes writes", int(journal.healthy))
    subscribers = services.bus.stats().get("subscribers")
    if isinstance(subscribers, int):
        yield GaugeMetricFamily("media_server_event_subscribers", "Event subscriptions open", subscribers)
