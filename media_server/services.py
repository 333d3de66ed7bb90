"""Everything the server runs on, built once from the settings and passed down explicitly."""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threadpoolctl import threadpool_limits

from media_server.auth.keys import ApiKey, Role, looks_like_key
from media_server.auth.sessions import KeySessions, KeyWatcher
from media_server.bus import EventBus, InMemoryEventBus
from media_server.calls.call import CallServices
from media_server.calls.lifecycle import CallLifecycle
from media_server.calls.speakers import Diarization
from media_server.cluster.lease import NodeLease
from media_server.cluster.live import LiveDirectory, RedisLiveDirectory
from media_server.config import EventSettings, Settings
from media_server.insights.nlp import Nlp
from media_server.looplag import LoopLag
from media_server.store.journal import Journal
from media_server.store.lock import DataDirLock, node_id, private_dir
from media_server.store.store import Store
from media_server.teams.directory import TeamDirectory
from media_server.teams.retention import Purger
from media_server.webhooks.sender import WebhookSender
from media_server.workers.remote import RemoteScheduler
from models.asr.engine import SpeechEngine
from models.asr.scheduler import DecodeScheduler, SplitScheduler
from models.asr.whisper_ct2 import WhisperCT2Engine
from models.diarization.voice_encoder import VoiceEncoder
from models.streaming import StreamingConfig
from models.vad import SileroVAD

log = logging.getLogger(__name__)
logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # it logs every decode at INFO

BOOTSTRAP_TEAM = "default"
FIRST_KEY_FILE = "first-admin-key"  # in the data dir: the first start's admin key (0600)


def streaming_config(settings: Settings) -> StreamingConfig:
    s = settings.streaming
    return StreamingConfig(
        endpointing_ms=s.endpointing_ms,
        utterance_end_ms=s.utterance_end_ms,
        hotwords=tuple(s.keyterms),
        interim_results=s.interim_results,
        interim_interval_s=s.interim_interval_ms / 1000,
        max_utterance_s=s.max_utterance_s,
        prompt_previous=s.prompt_previous,
        prompt_continuation=s.prompt_continuation,
        batch_join_ms=s.batch_join_ms,
        batch_max_utterance_s=s.batch_max_utterance_s,
        speech_threshold=settings.vad.threshold,
        silence_threshold=max(0.05, settings.vad.threshold - 0.15),
    )


def build_scheduler(settings: Settings) -> DecodeScheduler:
    """The decode scheduler of ``asr``; with ``asr.final_model``, interims on ``model`` and finals on that."""
    a = settings.asr
    if a.final_model:
        interims = build_scheduler(settings.model_copy(update={"asr": a.model_copy(update={"final_model": None})}))
        finals = build_scheduler(
            settings.model_copy(update={"asr": a.model_copy(update={"model": a.final_model, "final_model": None})})
        )
        return SplitScheduler(interims, finals)
    cores = len(os.sched_getaffinity(0))
    # On a CPU: one single-threaded decode per core (up to 4); on a GPU one worker, batching instead.
    workers = a.workers or (max(1, min(4, cores)) if a.device == "cpu" else 1)
    engine: SpeechEngine
    if a.backend == "torch":
        from models.asr.whisper_torch import WhisperTorchEngine  # torch is only imported when asked for

        engine = WhisperTorchEngine(model=a.model, device=a.device, dtype="float32" if a.device == "cpu" else "float16")
    else:
        engine = WhisperCT2Engine(
            model=a.model,
            device=a.device,
            compute_type=a.compute_type,
            cpu_threads=a.cpu_threads or max(1, cores // workers),
            download_root=a.download_root,
            workers=workers,
            final_beam_size=a.final_beam_size,
        )
    return DecodeScheduler(
        engine,
        # On a CPU the int8 encoder costs the same per item in a batch, and a final waiting behind a big batch
        # is late: pairs are the measured optimum (benchmarks/asr_capacity.py). A GPU batches for throughput.
        max_batch=a.max_batch or (2 if a.device == "cpu" else 16),
        max_wait_s=a.max_wait_ms / 1000,
        interim_max_age_s=a.interim_max_age_ms / 1000,
        workers=workers,
    )


@dataclass
class Services:
    settings: Settings
    store: Store
    bus: EventBus
    journal: Journal
    vad: SileroVAD
    scheduler: DecodeScheduler
    calls: CallLifecycle
    teams: TeamDirectory
    nlp: Nlp | None = None
    lock: DataDirLock | None = None
    lease: NodeLease | None = None  # several servers share the database: this one's lease
    directory: LiveDirectory = field(default_factory=LiveDirectory)  # the other servers' live calls
    purger: Purger | None = None  # teams' retention
    loop_lag: LoopLag = field(default_factory=LoopLag)  # how late the event loop runs (/v1/status)
    webhooks: WebhookSender | None = None  # teams' webhooks: sends the outbox's deliveries
    sessions: KeySessions = field(default_factory=KeySessions)  # open connections by key, ended when it is revoked
    key_watcher: KeyWatcher | None = None

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        # numpy's BLAS threads spin while they wait and would compete with the decode threads for the cores.
        threadpool_limits(1)
        private_dir(settings.data_dir)
        lock = DataDirLock(settings.data_dir)
        lock.acquire()  # DataDirLocked: another server runs on this data dir
        try:
            return await cls._start(settings, lock)
        except BaseException:
            lock.release()
            raise

    @classmethod
    async def _start(cls, settings: Settings, lock: DataDirLock) -> Services:
        st = settings.store
        store = Store(settings.db_url, st.synchronous, st.max_size_mb)
        await store.open()
        await _bootstrap_key(store, settings.data_dir)
        e = settings.events
        bus = _event_bus(e)
        try:
            await bus.start()  # (bus = redis: ConnectionError when Redis does not answer)
        except BaseException:
            await store.close()
            raise
        journal = Journal(
            store,
            bus,
            node_id(settings.data_dir, settings.node_id),
            commit_interval_s=st.commit_interval_ms / 1000,
            retry_for_s=st.retry_for_s,
            replay_max=e.replay_max,
        )
        await journal.start()
        vad = SileroVAD(settings.vad.model_path, batch_wait_s=settings.vad.batch_wait_ms / 1000)
        scheduler = build_scheduler(settings) if not settings.workers.urls else await _remote_scheduler(settings)
        nlp = await Nlp.load(settings.insights.spacy_model) if settings.insights.enabled else None
        diarization = await load_diarization(settings, vad)
        call_services = CallServices(
            journal,
            vad,
            scheduler,
            streaming_config(settings),
            settings.consent_policy,
            nlp,
            diarization,
            pacing=settings.calls.pacing,
        )
        teams = TeamDirectory(store)
        calls = CallLifecycle(
            call_services,
            store,
            teams,
            settings.calls.max_live,
            settings.calls.retry_after_s,
            settings.calls.drain_timeout_s,
            settings.calls.max_by_source.model_dump(),
        )
        journal.on_failure = calls.storage_failed  # a store that fails ends the calls it cannot keep
        await calls.recover()
        services = cls(settings, store, bus, journal, vad, scheduler, calls, teams, nlp, lock)
        services.key_watcher = KeyWatcher(store, services.sessions)
        await services.key_watcher.start()
        services.loop_lag.start()
        services.purger = Purger(store, st.purge_interval_s)
        await services.purger.start()
        services.webhooks = WebhookSender(store, settings.webhooks, journal.node)
        await services.webhooks.start()
        if settings.shared:
            c = settings.cluster
            services.lease = NodeLease(store, journal.node, settings.advertised_url, c.lease_s, calls.take_over)
            await services.lease.start()
            if e.bus == "redis" and e.redis_url:
                services.directory = RedisLiveDirectory(
                    e.redis_url, e.redis_prefix, journal.node, services._shown_calls, c.live_interval_s
                )
                await services.directory.start()
        return services

    async def held_elsewhere(self, team: str, call_id: str) -> tuple[str, str] | None:
        """The other server holding this live call and where it answers (``""``: it stopped answering), or None
        (live here, ended, unknown, or a single server)."""
        if self.lease is None or self.calls.live.find(team, call_id) is not None:
            return None
        owner = await self.store.live_owner(team, call_id)
        return owner if owner is not None and owner[0] != self.journal.node else None

    def _shown_calls(self) -> list[tuple[str, str, dict[str, Any]]]:
        """This server's live calls as the other servers' ``/v1/live`` shows them."""
        return [(call.team, call.id, call.snapshot()) for call in self.calls.live.values() if call.announced]

    async def authenticate(self, secret: str | None) -> ApiKey | None:
        if not secret or not looks_like_key(secret):
            return None
        return await self.store.find_key(secret)

    async def stop(self) -> None:
        await self.loop_lag.stop()
        if self.key_watcher is not None:
            await self.key_watcher.stop()
        if self.purger is not None:
            await self.purger.stop()
        if self.webhooks is not None:
            await self.webhooks.stop()
        await self.calls.shutdown()
        await self.directory.close()
        if self.lease is not None:
            await self.lease.stop()
        await self.journal.close()
        await self.bus.close()
        self.scheduler.close()
        if self.nlp is not None:
            self.nlp.close()
        if self.calls.services.diarization is not None:
            self.calls.services.diarization.close()
        await self.store.close()
        if self.lock is not None:
            self.lock.release()


async def _remote_scheduler(settings: Settings) -> RemoteScheduler:
    """Decoding on the recognition workers of ``workers.urls`` (``media-server worker``) instead of in-process."""
    scheduler = RemoteScheduler(settings.workers, settings.asr.interim_max_age_ms / 1000)
    await scheduler.start()
    return scheduler


async def load_diarization(settings: Settings, vad: SileroVAD) -> Diarization | None:
    """The speaker encoder mixed channels share; None (channels stay "mixed") when off or not loadable."""
    d = settings.diarization
    if not d.enabled:
        return None
    try:
        encoder = await asyncio.to_thread(VoiceEncoder, d.weights_path)
    except (OSError, ValueError) as exc:
        log.warning("speaker diarization is off: the speaker encoder cannot be loaded (%s)", exc)
        return None
    return Diarization(encoder, vad, d.max_speakers)


async def _bootstrap_key(store: Store, data_dir: Path) -> None:
    """A fresh server has no keys: create one admin key and write it to ``<data dir>/first-admin-key`` (0600), so
    that it can be used at all. The log says where, never the key."""
    if await store.has_keys():
        return
    path = data_dir / FIRST_KEY_FILE
    key, secret = await store.create_key(BOOTSTRAP_TEAM, Role.ADMIN, "bootstrap")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # (a file that was there keeps its mode through O_CREAT)
        file.write(secret + "\n")
    log.warning(
        "no API keys existed: created admin key %s for team %r, written to %s (readable by this user only; "
        "delete the file once the key is kept elsewhere); create more with: "
        "media-server keys create --team TEAM --role admin|manager|rep|ingest",
        key.id,
        key.team,
        path,
    )


def _event_bus(settings: EventSettings) -> EventBus:
    if settings.bus == "redis" and settings.redis_url:
        from media_server.bus.redis import RedisEventBus  # (redis-py only where it is used)

        return RedisEventBus(settings.redis_url, settings.redis_prefix, settings.window_s, settings.subscriber_queue)
    return InMemoryEventBus(settings.subscriber_queue)
