"""A live call: participants, channels and their timelines, consent, and the recognizers of the channels it may
transcribe.

Consent is applied here, before audio goes anywhere: a channel whose voices have not all consented
gets no recognizer, and its audio is dropped on arrival. What the recognizers say becomes the call's
``Transcript`` (``calls/transcript.py``), then insights; what others see of the call is ``calls/views.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from media_server.audio import Audio
from media_server.calls import views
from media_server.calls.consent import ConsentActor, may_transcribe_all, metadata_kept, transcribed_roles, voices_on
from media_server.calls.metadata import CallMetadata, Consent
from media_server.calls.pacing import CallPace
from media_server.calls.recognition import keyterms, streaming_config
from media_server.calls.speakers import ChannelSpeakers, Diarization
from media_server.calls.tap import AudioTap
from media_server.calls.transcript import Transcript
from media_server.config import ConsentPolicy, PacingSettings
from media_server.events import new_event, to_dict
from media_server.insights.cues import Cue
from media_server.insights.live import CallInsights
from media_server.insights.nlp import Nlp
from media_server.insights.redaction import RedactionPolicy, Redactor
from media_server.latency import ArrivalClock
from media_server.store.journal import Journal, StorageFailed
from media_server.store.records import CallRecord, ConsentChangeRecord, SegmentRecord
from media_server.store.writes import CallChanged, CallOpened, CallProgress, SegmentsKept, Write
from media_server.teams.config import TeamConfig
from media_server.v1 import events_pb2 as pb
from models.asr.scheduler import DecodeScheduler
from models.streaming import SpeechEvent, SpeechEventType, StreamingConfig, StreamingRecognizer
from models.vad import SileroVAD

log = logging.getLogger(__name__)

# Gaps in a channel's timeline longer than this are filled with silence (lost or suppressed packets).
_MAX_DRIFT_S = 0.06
# A live call's figures (talk time, metrics, keywords) are stored with a final at most this often.
_PROGRESS_EVERY_S = 15.0


@dataclass(frozen=True)
class ChannelSpec:
    index: int
    speaker: str  # "rep", "customer" or "mixed"
    sample_rate: int
    diarize: bool = True  # a mixed channel's speakers are told apart; False: it is not (nobody asked)


@dataclass
class CallServices:
    """What a call needs from the server, passed down explicitly."""

    journal: Journal  # every event goes through it: stored, then published
    vad: SileroVAD
    scheduler: DecodeScheduler
    streaming: StreamingConfig
    consent_policy: ConsentPolicy
    nlp: Nlp | None = None  # trackers and entities; None: keyterm hits only
    diarization: Diarization | None = None  # speakers of mixed channels; None: they stay "mixed"
    pacing: PacingSettings | None = None  # live audio no faster than real time (calls/pacing.py); None: unpaced
    final_latency: Callable[[float], None] | None = None  # observes each final's latency (/metrics)


@dataclass
class CallChannel:
    spec: ChannelSpec
    transcribed: bool
    recognizer: StreamingRecognizer | None = None
    consumer: asyncio.Task[None] | None = None
    samples: int = 0  # samples placed on the channel's timeline so far
    on_hold: bool = False
    speakers: ChannelSpeakers | None = None  # a mixed channel's diarization
    withdrawn: bool = False  # a voice on it denied consent mid-call: its pending results are dropped
    arrivals: ArrivalClock = field(default_factory=ArrivalClock)  # when its audio came (a final's latency)

    @property
    def index(self) -> int:
        return self.spec.index

    @property
    def speaker(self) -> str:
        return self.spec.speaker

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def position(self) -> float:
        return self.samples / self.spec.sample_rate

    @property
    def audible(self) -> bool:
        """May a listener hear it: every voice on it may be transcribed (consent), and it is not on hold."""
        return self.transcribed and not self.on_hold


class Call:
    def __init__(
        self,
        call_id: str,
        team: str,
        source: str,
        metadata: CallMetadata,
        channels: list[ChannelSpec],
        services: CallServices,
        team_config: TeamConfig | None = None,
        batch: bool = False,
    ) -> None:
        self.id = call_id
        self.team = team
        self.source = source
        self.metadata = metadata
        self.services = services
        self.started_at = datetime.now(UTC)
        self.epoch = time.monotonic()  # call time 0, for adapters that place audio by their own clocks (RTP)
        self.last_audio = self.epoch
        self._retired: list[asyncio.Task[None]] = []  # consumers of recognizers stopped mid-call
        self.taps: set[AudioTap] = set()  # listen-in
        self.finished = False  # finish() began: no more audio, no new listeners
        self.announced = False  # its call_started event is out
        self.end_reason: str | None = None  # why it ends (a ``CallEnd``), set when its end begins
        self.ending = asyncio.Event()  # set when its end begins, by whoever ends it
        self.end_task: asyncio.Task[CallRecord] | None = None  # the one end (``CallLifecycle.end``)
        self.team_config = team_config or TeamConfig()
        # Batch work (a whole recording at once: Riva Recognize) is not paced; the recogniser takes it when no live
        # call's work waits.
        self.batch = batch
        self.pace = CallPace(None if batch else services.pacing)
        self.latest_cue: dict[str, Any] | None = None
        self.latest_keyword: dict[str, Any] | None = None
        policy = services.consent_policy
        self.transcribed_roles = transcribed_roles(metadata, policy)
        self.channels: dict[int, CallChannel] = {}
        for spec in channels:
            channel = CallChannel(spec, transcribed=may_transcribe_all(voices_on(metadata, spec.speaker), policy))
            if spec.speaker == "mixed" and spec.diarize and channel.transcribed and services.diarization is not None:
                channel.speakers = services.diarization.channel(spec.sample_rate)
            self.channels[spec.index] = channel
        self.insights = CallInsights(self.team_config, services.nlp, keyterms(services.streaming, metadata.recognition))
        self._hear_customer()
        # The team's redaction, plus what this call asked for (a call can add types, never remove the team's).
        redaction = RedactionPolicy.of({*self.team_config.redaction, *metadata.recognition.redact})
        self.transcript = Transcript(Redactor(redaction) if redaction.types else None)
        self._speaking: set[int] = set()  # channels with speech in progress
        self._utterance_end_events = self.streaming_config().utterance_end_ms > 0
        self._clock: asyncio.Task[None] | None = None
        self._progress_at = time.monotonic()
        self.relabelled: dict[int, list[SegmentRecord]] = {}  # diarized channels the end of the call relabelled

    # -- life cycle ----------------------------------------------------------------------------------

    def streaming_config(self) -> StreamingConfig:
        return streaming_config(
            self.services.streaming, self.metadata.recognition, self.team_config, self.team, batch=self.batch
        )

    def _hear_customer(self) -> None:
        self.insights.cues.customer_heard = any(
            c.transcribed and c.spec.speaker == "customer" for c in self.channels.values()
        )

    async def start(self) -> None:
        """Announce the call and start transcribing it, once its row is stored: the database decides whether the
        team's call id is free (``CallIdTaken``: nothing of this call was started or stored). ``StorageFailed``:
        the store failed, or the call was ended while it waited for it."""
        started = views.call_started(self.source, self.metadata, self.transcribed_roles, self.channels.values())
        event = await self.publish(CallOpened(views.opened(self), self.services.journal.node), call_started=started)
        stored = asyncio.ensure_future(self.services.journal.committed(event))
        ended = asyncio.ensure_future(self.ending.wait())
        try:
            await asyncio.wait({stored, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not stored.done():
                stored.cancel()
        if not stored.done() or stored.cancelled():
            raise StorageFailed("the call ended before it could be stored")
        stored.result()
        if self.ending.is_set():  # (ended as it was stored: its end stores the rest)
            raise StorageFailed("the call ended as it started")
        for channel in self.channels.values():
            if channel.transcribed:
                self._start_recognizer(channel)
        self.announced = True
        self._clock = asyncio.create_task(self._tick(), name=f"call-{self.id}-clock")

    async def _tick(self) -> None:
        """Once a second of call time: the cues that time alone decides (silence, no question asked)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                # Call time as the audio says (what transcripts are timed by), not the wall clock.
                now = max((c.position for c in self.channels.values()), default=0.0)
                for cue in self.insights.tick(now, bool(self._speaking)):
                    await self._publish_cue(cue)
            except Exception:
                log.exception("call %s: the coaching clock failed", self.id)

    def _start_recognizer(self, channel: CallChannel) -> None:
        config = self.streaming_config()
        if config.batch and channel.spec.speaker == "mixed" and channel.spec.diarize:
            # Both parties on one channel of a recording: a pause there is often a change of speaker, and tiny.en
            # takes long two-voice windows worse (README, "Recorded calls": mixed 11.2 % joined, 10.3 % not).
            config = replace(config, batch_join_ms=0)
        recognizer = StreamingRecognizer(
            channel.spec.sample_rate,
            self.services.vad,
            self.services.scheduler,
            config,
            time_offset=channel.position,
        )
        channel.recognizer = recognizer
        channel.consumer = asyncio.create_task(
            self._consume(channel, recognizer), name=f"call-{self.id}-{channel.spec.index}"
        )

    def _stop_recognizer(self, channel: CallChannel) -> None:
        """No more audio of this channel is transcribed; what it already heard still gets its final."""
        if channel.recognizer is not None:
            channel.recognizer.end()
            channel.recognizer = None
        if channel.consumer is not None:
            self._retired.append(channel.consumer)
            channel.consumer = None

    async def reconfigure(
        self,
        metadata: CallMetadata,
        channels: list[ChannelSpec],
        on_hold: frozenset[int] = frozenset(),
        actor: ConsentActor | None = None,
    ) -> None:
        """Apply new participants (names, consent) and channels (speaker, new streams, hold) to the live call.

        Consent is re-decided per channel: a channel that loses it stops being transcribed at once, one that
        gains it starts at the current call time. A channel's sample rate never changes. Each change of a
        participant's consent goes into the call's consent history, made by ``actor`` (None: the platform, in the
        call's metadata).
        """
        before = {p.role: p.consent for p in self.metadata.participants}
        by = actor or ConsentActor("metadata", label=self.source, role="ingest")
        now = datetime.now(UTC)
        consent_changes = [
            ConsentChangeRecord(
                p.role.value, before[p.role].value, p.consent.value, by.source, now, by.key_id, by.label, by.role
            )
            for p in metadata.participants
            if p.role in before and before[p.role] is not p.consent
        ]
        self.metadata = metadata
        self.insights.set_keyterms(keyterms(self.services.streaming, metadata.recognition))
        policy = self.services.consent_policy
        self.transcribed_roles = transcribed_roles(metadata, policy)
        erased: list[int] = []
        for spec in channels:
            voices = voices_on(metadata, spec.speaker)
            allowed = may_transcribe_all(voices, policy)
            channel = self.channels.get(spec.index)
            if channel is None:
                channel = CallChannel(spec, transcribed=allowed)
                channel.samples = int((time.monotonic() - self.epoch) * spec.sample_rate)  # it joins now
                self.channels[spec.index] = channel
                if allowed:
                    self._start_recognizer(channel)
            else:
                channel.spec = replace(spec, sample_rate=channel.spec.sample_rate)
                if channel.transcribed and not allowed:
                    self._stop_recognizer(channel)
                elif allowed and not channel.transcribed:
                    self._start_recognizer(channel)
                channel.transcribed = allowed
                # A voice on it said no: what it said so far is not kept either, nor what is still being decoded.
                channel.withdrawn = not allowed and any(v.consent is Consent.DENIED for v in voices)
                if channel.withdrawn:
                    self.transcript.withdraw(spec.index)
                    erased.append(spec.index)
            channel.on_hold = spec.index in on_hold
            if not channel.audible:
                for tap in self.taps:
                    tap.silence(spec.index)
        self._hear_customer()
        updated = views.call_updated(self.metadata, self.transcribed_roles, self.channels.values())
        changed = CallChanged(
            self.team,
            self.id,
            views.participant_records(self.metadata, self.transcribed_roles),
            views.channel_records(self.channels.values()),
            metadata_kept(self.metadata, self.transcribed_roles),
            erased,
            consent_changes,
        )
        await self.publish(changed, call_updated=updated)

    def push(self, frame: Audio) -> None:
        """Place audio on its channel's timeline. Audio of a channel without consent goes nowhere."""
        channel = self.channels.get(frame.channel)
        if channel is None:
            raise ValueError(f"call {self.id} has no channel {frame.channel}")
        if self.finished or self.pace.too_fast:  # ended by the server while its peer still sends
            return
        self.pace.took(frame.channel, frame.pcm.size / channel.spec.sample_rate)
        self.last_audio = time.monotonic()
        if frame.start_time is not None:
            gap = int((frame.start_time - channel.position) * channel.spec.sample_rate)
            if gap > _MAX_DRIFT_S * channel.spec.sample_rate:
                self._feed(channel, np.zeros(gap, dtype=np.int16))
        self._feed(channel, frame.pcm)
        if self.taps and channel.audible:
            for tap in self.taps:
                tap.put(frame.channel, channel.spec.sample_rate, frame.pcm)

    def _feed(self, channel: CallChannel, pcm: npt.NDArray[np.int16]) -> None:
        channel.samples += pcm.size
        channel.arrivals.note(channel.position)
        if channel.recognizer is not None:
            channel.recognizer.push(pcm)
            if channel.speakers is not None:
                channel.speakers.push(pcm)

    def finalize(self) -> None:
        """Every channel's open utterance gets its final now (a client asked; no pause needed)."""
        for channel in self.channels.values():
            if channel.recognizer is not None:
                channel.recognizer.finalize()

    async def dtmf(self, channel: int, digit: str) -> None:
        await self.publish(dtmf=views.dtmf(channel, digit))

    async def error(self, code: str, message: str) -> None:
        await self.publish(error=views.error(code, message))

    async def finish(self, status: str, reason: str, drain_s: float | None = None) -> CallRecord:
        """Flush every recognizer (the last utterance gets its final), then describe the call. ``drain_s``: how
        long the recognizers may take (a shutdown's drain); what they have not finalised by then is cut."""
        self.finished = True
        if self._clock is not None:
            self._clock.cancel()
        for channel in self.channels.values():
            if channel.recognizer is not None:
                channel.recognizer.end()
        for tap in self.taps:
            tap.close()
        consumers = [c.consumer for c in self.channels.values() if c.consumer is not None] + self._retired
        if consumers:
            _, late = await asyncio.wait(consumers, timeout=drain_s)
            for consumer in late:
                consumer.cancel()
            if late:
                log.warning("call %s: %d recognizers were cut after %s s", self.id, len(late), drain_s)
                await asyncio.gather(*late, return_exceptions=True)
        for channel in self.channels.values():
            if channel.speakers is not None and self.transcript.segments(channel.index):
                refined = await channel.speakers.refine()
                if refined:
                    self.transcript.relabel(channel.index, refined)
                    kept = self.transcript.segments(channel.index)
                    self.relabelled[channel.index] = [views.segment_record(s) for s in kept]
            if channel.speakers is not None:
                channel.speakers.close()
        return self.record(status, reason)

    # -- listen-in -----------------------------------------------------------------------------------

    def add_tap(self, tap: AudioTap) -> None:
        if self.finished:
            tap.close()
            return
        self.taps.add(tap)

    def remove_tap(self, tap: AudioTap) -> None:
        self.taps.discard(tap)
        tap.close()

    # -- transcripts ---------------------------------------------------------------------------------

    async def _consume(self, channel: CallChannel, recognizer: StreamingRecognizer) -> None:
        async for event in recognizer.events():
            try:
                await self._on_speech(channel, event)
            except Exception:
                log.exception("call %s: could not publish a transcript", self.id)

    async def _on_speech(self, channel: CallChannel, event: SpeechEvent) -> None:
        if channel.withdrawn:
            return
        index, speaker = channel.index, channel.speaker
        if event.type is SpeechEventType.START_OF_SPEECH:
            self._speaking.add(index)
            await self.publish(speech_started=views.speech_started(index, speaker, event.start))
            return
        if event.type is SpeechEventType.UTTERANCE_END:
            self._speaking.discard(index)
            last = self.transcript.last_end(index)
            await self.publish(utterance_end=views.utterance_end(index, speaker, event.end if last is None else last))
            return
        # Speech goes on until the utterance-end event: a final cut by the utterance length limit is no pause.
        if event.type is not SpeechEventType.FINAL:
            self._speaking.add(index)
        elif not self._utterance_end_events:
            self._speaking.discard(index)
        kept = len(self.transcript.segments(index)) if event.type is SpeechEventType.FINAL else 0
        heard = await self.transcript.heard(index, speaker, event, channel.speakers)
        if channel.withdrawn:  # consent was withdrawn while its words were being labelled: nothing of it is kept
            self.transcript.withdraw(index)
            return
        writes: list[Write] = []
        if heard.final and self.services.final_latency is not None and not self.batch:  # (live audio's finals)
            if (latency := channel.arrivals.since(event.end)) is not None:
                self.services.final_latency(latency)
        if heard.final:
            new = self.transcript.segments(index)[kept:]
            if new:
                writes.append(SegmentsKept(self.team, self.id, [views.segment_record(s) for s in new]))
            if time.monotonic() - self._progress_at >= _PROGRESS_EVERY_S:
                self._progress_at = time.monotonic()
                writes.append(self.progress())
        await self.publish(*writes, transcript=views.transcript(heard))
        if heard.final and heard.text:
            matches, cues = await self.insights.final(heard.said())
            for m in matches:
                await self.publish(**views.match(heard, m))
            for c in cues:
                await self._publish_cue(c)

    async def _publish_cue(self, cue: Cue) -> None:
        channel = next((c.index for c in self.channels.values() if c.speaker == cue.speaker), 0)
        await self.publish(cue=views.cue(cue, channel))

    async def publish(self, *writes: Write, **payload: object) -> pb.Event:
        """Emit one event (``publish(transcript=...)``) with the rows of this call it changes: it gets its id
        now, is stored in the next group commit and reaches subscribers after that (``store/journal.py``)."""
        event = self.services.journal.append(new_event(self.id, self.team, **payload), *writes)
        if event.type == "cue":
            self.latest_cue = to_dict(event.cue)
        elif event.type == "keyword_hit":
            self.latest_keyword = to_dict(event.keyword_hit)
        return event

    # -- how others see it ---------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard's wall shows of the live call (``/v1/live``)."""
        return views.snapshot(self)

    def progress(self) -> CallProgress:
        """The live call's figures so far, as stored in its row."""
        record = self.record("live", "")
        return CallProgress(self.team, self.id, record.speakers, record.metrics, record.keywords)

    def record(self, status: str, reason: str) -> CallRecord:
        """The call as the store keeps it. A batch call (a recording fed faster than real time) lasts as long as its
        audio, not as long as its processing took: its end and its per-minute metrics are the audio's."""
        record = views.record(self, status, reason)
        if self.batch and status != "live":
            duration = max((c.position for c in self.channels.values()), default=0.0)
            metrics = self.insights.metrics(duration)
            record.ended_at = record.started_at + timedelta(seconds=duration)
            record.metrics, record.disposition = metrics.to_json(), metrics.disposition
        return record
