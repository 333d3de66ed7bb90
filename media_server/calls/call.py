"""A live call: participants, channels, consent, and the recognizers of the channels it may transcribe.

Consent is applied here, before audio goes anywhere: a channel whose voices have not all consented
gets no recognizer, and its audio is dropped on arrival.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from media_server.audio import Audio
from media_server.bus import EventBus
from media_server.calls.consent import may_transcribe, may_transcribe_all
from media_server.calls.keywords import TimedWord
from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, Role
from media_server.calls.speakers import ChannelSpeakers, Diarization, label_of
from media_server.calls.tap import AudioTap
from media_server.config import ConsentPolicy
from media_server.events import new_event, to_dict
from media_server.insights.cues import Cue
from media_server.insights.live import CallInsights, Final
from media_server.insights.metrics import CallMetrics
from media_server.insights.nlp import Nlp
from media_server.insights.redaction import RedactionPolicy, Redactor, context_after, other_party_context
from media_server.store.records import (
    CallRecord,
    ChannelRecord,
    ParticipantRecord,
    SegmentRecord,
    SpeakerRecord,
)
from media_server.teams.config import TeamConfig
from media_server.v1 import events_pb2 as pb
from models.asr.engine import Word
from models.asr.scheduler import DecodeScheduler
from models.diarization.online import Segment as DiarizedSegment
from models.streaming import SpeechEvent, SpeechEventType, StreamingConfig, StreamingRecognizer
from models.vad import SileroVAD

log = logging.getLogger(__name__)

SPEAKER_ROLES: dict[str, tuple[Role, ...]] = {
    "rep": (Role.REP,),
    "customer": (Role.CUSTOMER,),
    "mixed": (Role.REP, Role.CUSTOMER),
}
_CONSENT_PB = {
    Consent.GRANTED: pb.CONSENT_GRANTED,
    Consent.DENIED: pb.CONSENT_DENIED,
    Consent.UNKNOWN: pb.CONSENT_UNKNOWN,
}
OTHER_PARTY_CONTEXT_S = 15.0  # the other party's last final is redaction context for this long after it ended
# Gaps in a channel's timeline longer than this are filled with silence (lost or suppressed packets).
_MAX_DRIFT_S = 0.06


@dataclass(frozen=True)
class ChannelSpec:
    index: int
    speaker: str  # "rep", "customer" or "mixed"
    sample_rate: int
    diarize: bool = True  # a mixed channel's speakers are told apart; False: it is not (nobody asked)


@dataclass
class CallServices:
    """What a call needs from the server, passed down explicitly."""

    bus: EventBus
    vad: SileroVAD
    scheduler: DecodeScheduler
    streaming: StreamingConfig
    consent_policy: ConsentPolicy
    nlp: Nlp | None = None  # trackers and entities; None: keyterm hits only
    diarization: Diarization | None = None  # speakers of mixed channels; None: they stay "mixed"


@dataclass
class CallChannel:
    spec: ChannelSpec
    transcribed: bool
    recognizer: StreamingRecognizer | None = None
    consumer: asyncio.Task[None] | None = None
    segments: list[SegmentRecord] = field(default_factory=list)
    samples: int = 0  # samples placed on the channel's timeline so far
    on_hold: bool = False
    said_before: str = ""  # its last finals, unredacted, in memory only: context for redaction
    last_said: tuple[float, str] | None = None  # (end, text) of its last final, unredacted: the others' context
    speakers: ChannelSpeakers | None = None  # a mixed channel's diarization
    withdrawn: bool = False  # a voice on it denied consent mid-call: its pending results are dropped

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
        self.team_config = team_config or TeamConfig()
        self.latest_cue: dict[str, Any] | None = None
        self.latest_keyword: dict[str, Any] | None = None
        policy = services.consent_policy
        self.transcribed_roles = {p.role for p in metadata.participants if may_transcribe(p.consent, policy)}
        self.channels: dict[int, CallChannel] = {}
        for spec in channels:
            voices = [metadata.participant(r) for r in SPEAKER_ROLES[spec.speaker]]
            channel = CallChannel(spec, transcribed=may_transcribe_all(voices, policy))
            if spec.speaker == "mixed" and spec.diarize and channel.transcribed and services.diarization is not None:
                channel.speakers = services.diarization.channel(spec.sample_rate)
            self.channels[spec.index] = channel
        self.insights = self._insights()
        self._hear_customer()
        # The team's redaction, plus what this call asked for (a call can add types, never remove the team's).
        redaction = RedactionPolicy.of({*self.team_config.redaction, *metadata.recognition.redact})
        self.redactor = Redactor(redaction) if redaction.types else None
        self._speaking: set[int] = set()  # channels with speech in progress
        self._utterance_end_events = self.streaming_config().utterance_end_ms > 0
        self._clock: asyncio.Task[None] | None = None

    # -- life cycle ----------------------------------------------------------------------------------

    def streaming_config(self) -> StreamingConfig:
        """The server's streaming settings, with this call's overrides (endpointing, keyterms, ...)."""
        base = self.services.streaming
        options = self.metadata.recognition
        return replace(
            base,
            endpointing_ms=options.endpointing_ms or base.endpointing_ms,
            utterance_end_ms=base.utterance_end_ms if options.utterance_end_ms is None else options.utterance_end_ms,
            interim_results=base.interim_results if options.interim_results is None else options.interim_results,
            hotwords=tuple(dict.fromkeys((*base.hotwords, *self.team_config.keyterms(), *options.keyterms))),
        )

    def _hear_customer(self) -> None:
        self.insights.cues.customer_heard = any(
            c.transcribed and c.spec.speaker == "customer" for c in self.channels.values()
        )

    def _keyterms(self) -> tuple[str, ...]:
        """The server's and the call's keyterms (the team's tracker phrases are the trackers' own)."""
        return tuple(dict.fromkeys((*self.services.streaming.hotwords, *self.metadata.recognition.keyterms)))

    def _insights(self) -> CallInsights:
        return CallInsights(self.team_config, self.services.nlp, self._keyterms())

    async def start(self) -> None:
        for channel in self.channels.values():
            if channel.transcribed:
                self._start_recognizer(channel)
        started = pb.CallStarted(
            source=self.source,
            participants=[self._participant_pb(p) for p in self.metadata.participants],
            channels=[self._channel_pb(c) for c in self.channels.values()],
            metadata=self.metadata.extra,
        )
        await self.publish(call_started=started)
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
        recognizer = StreamingRecognizer(
            channel.spec.sample_rate,
            self.services.vad,
            self.services.scheduler,
            self.streaming_config(),
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
        self, metadata: CallMetadata, channels: list[ChannelSpec], on_hold: frozenset[int] = frozenset()
    ) -> None:
        """Apply new participants (names, consent) and channels (speaker, new streams, hold) to the live call.

        Consent is re-decided per channel: a channel that loses it stops being transcribed at once, one that
        gains it starts at the current call time. A channel's sample rate never changes.
        """
        self.metadata = metadata
        self.insights.set_keyterms(self._keyterms())
        policy = self.services.consent_policy
        self.transcribed_roles = {p.role for p in metadata.participants if may_transcribe(p.consent, policy)}
        for spec in channels:
            voices = [metadata.participant(r) for r in SPEAKER_ROLES[spec.speaker]]
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
                    channel.segments.clear()
            channel.on_hold = spec.index in on_hold
            if not channel.audible:
                for tap in self.taps:
                    tap.silence(spec.index)
        self._hear_customer()
        updated = pb.CallUpdated(
            participants=[self._participant_pb(p) for p in self.metadata.participants],
            channels=[self._channel_pb(c) for c in self.channels.values()],
            metadata=self.metadata.extra,
        )
        await self.publish(call_updated=updated)

    @staticmethod
    def _channel_pb(c: CallChannel) -> pb.Channel:
        return pb.Channel(
            index=c.spec.index,
            speaker=c.spec.speaker,
            sample_rate=c.spec.sample_rate,
            transcribed=c.transcribed,
            on_hold=c.on_hold,
        )

    def push(self, frame: Audio) -> None:
        """Place audio on its channel's timeline. Audio of a channel without consent goes nowhere."""
        channel = self.channels.get(frame.channel)
        if channel is None:
            raise ValueError(f"call {self.id} has no channel {frame.channel}")
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
        await self.publish(dtmf=pb.Dtmf(channel=channel, digit=digit))

    async def error(self, code: str, message: str) -> None:
        await self.publish(error=pb.Error(code=code, message=message))

    async def finish(self, status: str, reason: str) -> CallRecord:
        """Flush every recognizer (the last utterance gets its final), then describe the call."""
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
            await asyncio.gather(*consumers, return_exceptions=True)
        for channel in self.channels.values():
            if channel.speakers is not None and channel.segments:
                refined = await channel.speakers.refine()
                if refined:
                    channel.segments = relabel(channel.segments, refined)
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
        spec = channel.spec
        if event.type is SpeechEventType.START_OF_SPEECH:
            self._speaking.add(spec.index)
            await self.publish(
                speech_started=pb.SpeechStarted(channel=spec.index, speaker=spec.speaker, start=event.start)
            )
            return
        if event.type is SpeechEventType.UTTERANCE_END:
            self._speaking.discard(spec.index)
            last = channel.segments[-1].end if channel.segments else event.end
            await self.publish(
                utterance_end=pb.UtteranceEnd(channel=spec.index, speaker=spec.speaker, last_word_end=last)
            )
            return
        final = event.type is SpeechEventType.FINAL
        # Speech goes on until the utterance-end event: a final cut by the utterance length limit is no pause.
        if not final:
            self._speaking.add(spec.index)
        elif not self._utterance_end_events:
            self._speaking.discard(spec.index)
        text, said_words, stable = self._redacted(channel, event, final)
        labels = [""] * len(said_words)
        if final and channel.speakers is not None and said_words:
            labels = await channel.speakers.labels([(w.start, w.end) for w in said_words])
        words = [
            pb.Word(word=w.word, start=w.start, end=w.end, confidence=w.confidence, speaker=label)
            for w, label in zip(said_words, labels, strict=True)
        ]
        majority = max(set(labels), key=labels.count) if any(labels) else ""
        start = words[0].start if words else event.start
        end = words[-1].end if words else event.end
        if final and text:
            record = SegmentRecord(
                channel=spec.index,
                speaker=spec.speaker,
                text=text,
                start=start,
                end=end,
                confidence=round(event.confidence, 4),
                words=[
                    {"word": w.word, "start": w.start, "end": w.end, "confidence": w.confidence, "speaker": label}
                    for w, label in zip(said_words, labels, strict=True)
                ],
            )
            channel.segments += split_by_speaker(record) if majority else [record]
        transcript = pb.Transcript(
            channel=spec.index,
            speaker=spec.speaker,
            is_final=final,
            text=text,
            words=words,
            start=event.start,
            end=event.end,
            segment=event.segment,
            confidence=event.confidence,
            stable_text=stable,
            stability=event.stability,
            speaker_label=majority,
            speech_final=event.speech_final,
        )
        await self.publish(transcript=transcript)
        if final and text:
            timed = [TimedWord(w.word, w.start, w.end) for w in said_words]
            said = Final(spec.index, majority or spec.speaker, text, start, end, event.segment, timed)
            matches, cues = await self.insights.final(said)
            for m in matches:
                if m.kind == "tracker":
                    hit = pb.KeywordHit(
                        channel=spec.index,
                        speaker=spec.speaker,
                        keyword=m.name,
                        category=m.category,
                        start=m.start,
                        end=m.end,
                        segment=event.segment,
                        text=m.text,
                        char_start=m.char_start,
                        char_end=m.char_end,
                    )
                    await self.publish(keyword_hit=hit)
                else:
                    entity = pb.Entity(
                        channel=spec.index,
                        speaker=spec.speaker,
                        label=m.name,
                        text=m.text,
                        start=m.start,
                        end=m.end,
                        segment=event.segment,
                        char_start=m.char_start,
                        char_end=m.char_end,
                    )
                    await self.publish(entity=entity)
            for cue in cues:
                await self._publish_cue(cue)

    def _redacted(self, channel: CallChannel, event: SpeechEvent, final: bool) -> tuple[str, list[Word], str]:
        """The text, words and stable text of a transcript with the team's redaction applied: what every
        subscriber sees and the store keeps. What the channel said in its last finals is context (a card number
        read out with a pause, or past the utterance length limit, ends up in two finals; "let me get my card"
        may be a final of its own), kept unredacted so that a number's digits on both sides of the cut are one; so
        is the other party's last turn of the last 15 s, without its numbers (the rep asks for the card number)."""
        words = list(event.words)
        if self.redactor is None or not event.text:
            return event.text, words, event.stable_text
        interim, previous = not final, channel.said_before
        if final:
            channel.said_before = context_after(previous, event.text)
            channel.last_said = (event.end, event.text)
        # The other party's last turn, if recent, is context too ("Can I have the card number?"), without its digits.
        heard = [c.last_said for c in self.channels.values() if c is not channel and c.last_said is not None]
        latest = max(heard, default=None)
        if latest is not None and event.start - latest[0] <= OTHER_PARTY_CONTEXT_S:
            previous = " ".join(part for part in (other_party_context(latest[1]), previous) if part)
        if words:
            redacted = self.redactor.redact_words(words, interim=interim, previous=previous)
            if redacted.redactions:
                words, text = redacted.words, redacted.text
            else:
                text = event.text
        else:
            text = self.redactor.redact_text(event.text, interim=interim, previous=previous).text
        stable = self.redactor.redact_text(event.stable_text, interim=True, previous=previous).text
        return text, words, stable

    async def _publish_cue(self, cue: Cue) -> None:
        channel = next((c.spec.index for c in self.channels.values() if c.spec.speaker == cue.speaker), 0)
        payload = pb.Cue(
            kind=cue.kind, message=cue.message, speaker=cue.speaker, channel=channel, time=cue.time, detail=cue.detail
        )
        await self.publish(cue=payload)

    async def publish(self, **payload: object) -> pb.Event:
        event = await self.services.bus.publish(new_event(self.id, self.team, **payload))
        if event.type == "cue":
            self.latest_cue = to_dict(event.cue)
        elif event.type == "keyword_hit":
            self.latest_keyword = to_dict(event.keyword_hit)
        return event

    # -- the live view -------------------------------------------------------------------------------

    def talk_time(self) -> dict[str, float]:
        """Seconds each speaker has talked so far (final segments)."""
        out: dict[str, float] = {}
        for channel in self.channels.values():
            for s in channel.segments:
                out[s.speaker] = out.get(s.speaker, 0.0) + max(0.0, s.end - s.start)
        return {k: round(v, 3) for k, v in out.items()}

    def snapshot(self) -> dict[str, Any]:
        """What the dashboard's wall shows of a live call, in the REST API's JSON shape."""
        talk = self.talk_time()
        spoken = talk.get("rep", 0.0) + talk.get("customer", 0.0)
        return {
            "id": self.id,
            "source": self.source,
            "startedAt": self.started_at.isoformat().replace("+00:00", "Z"),
            "duration": round((datetime.now(UTC) - self.started_at).total_seconds(), 3),
            "participants": [
                {
                    "role": p.role.value,
                    "id": kept.id,
                    "name": kept.name,
                    "phone": kept.phone,
                    "email": kept.email,
                    "consent": p.consent.value,
                    "transcribed": p.role in self.transcribed_roles,
                }
                for p in self.metadata.participants
                for kept in (self._kept(p),)
            ],
            "channels": [
                {
                    "index": c.spec.index,
                    "speaker": c.spec.speaker,
                    "sampleRate": c.spec.sample_rate,
                    "transcribed": c.transcribed,
                    "onHold": c.on_hold,
                }
                for c in self.channels.values()
            ],
            "talkTime": talk,
            "talkRatio": round(talk.get("rep", 0.0) / spoken, 3)
            if spoken > 0 and self.insights.cues.customer_heard
            else None,
            "keywords": dict(self.insights.hits),
            "latestCue": self.latest_cue,
            "latestKeyword": self.latest_keyword,
            "listeners": len(self.taps),
            "metadata": dict(self.metadata.extra),
        }

    # -- the stored form -----------------------------------------------------------------------------

    def _participant_pb(self, p: ParticipantInfo) -> pb.Participant:
        kept = self._kept(p)
        return pb.Participant(
            role=p.role.value,
            id=kept.id,
            name=kept.name,
            phone=kept.phone,
            email=kept.email,
            consent=_CONSENT_PB[p.consent],
            transcribed=p.role in self.transcribed_roles,
        )

    def _kept(self, p: ParticipantInfo) -> ParticipantInfo:
        """Identity is kept for the rep and for customers who may be transcribed; otherwise only the flag."""
        if p.role is Role.REP or p.role in self.transcribed_roles:
            return p
        return ParticipantInfo(p.role, consent=p.consent)

    def participant_records(self) -> list[ParticipantRecord]:
        """Who is on the call, as the store keeps them (identity only where it may be kept)."""
        out = []
        for p in self.metadata.participants:
            kept = self._kept(p)
            out.append(
                ParticipantRecord(
                    role=p.role.value,
                    consent=p.consent.value,
                    transcribed=p.role in self.transcribed_roles,
                    id=kept.id,
                    name=kept.name,
                    phone=kept.phone,
                    email=kept.email,
                )
            )
        return out

    def channel_records(self) -> list[ChannelRecord]:
        return [
            ChannelRecord(c.spec.index, c.spec.speaker, c.spec.sample_rate, c.transcribed)
            for c in self.channels.values()
        ]

    def record(self, status: str, reason: str) -> CallRecord:
        segments = sorted((s for c in self.channels.values() for s in c.segments), key=lambda s: (s.start, s.channel))
        speakers: dict[str, SpeakerRecord] = {}
        for s in segments:
            stats = speakers.setdefault(s.speaker, SpeakerRecord(s.speaker, 0.0, 0))
            stats.talk_time += max(0.0, s.end - s.start)
            stats.word_count += len(s.words) or len(s.text.split())
        for stats in speakers.values():
            stats.talk_time = round(stats.talk_time, 3)
        return CallRecord(
            id=self.id,
            team=self.team,
            source=self.source,
            status=status,
            end_reason=reason,
            started_at=self.started_at,
            ended_at=datetime.now(UTC),
            participants=self.participant_records(),
            channels=self.channel_records(),
            segments=segments,
            speakers=list(speakers.values()),
            metadata=dict(self.metadata.extra),
            keywords=sorted(self.insights.hits),
            metrics=(metrics := self.metrics()).to_json(),
            disposition=metrics.disposition,
        )

    def metrics(self) -> CallMetrics:
        return self.insights.metrics((datetime.now(UTC) - self.started_at).total_seconds())


def split_by_speaker(segment: SegmentRecord) -> list[SegmentRecord]:
    """A mixed channel's final cut where its words change speaker (turns inside one utterance are common:
    the recogniser ends an utterance only at a pause). Each piece is stored with its speaker's label."""
    pieces: list[SegmentRecord] = []
    run: list[dict[str, Any]] = []
    for word in [*segment.words, None]:
        if run and (word is None or word.get("speaker", "") != run[-1].get("speaker", "")):
            label = run[-1].get("speaker", "") or segment.speaker
            text = " ".join(str(w["word"]).strip() for w in run)
            pieces.append(
                replace(segment, speaker=label, text=text, start=run[0]["start"], end=run[-1]["end"], words=run)
            )
            run = []
        if word is not None:
            run.append(word)
    if len(pieces) == 1:  # one speaker: keep the recogniser's text as it was (punctuation and spacing)
        pieces[0] = replace(pieces[0], text=segment.text)
    return pieces or [segment]


def relabel(segments: list[SegmentRecord], refined: Sequence[DiarizedSegment]) -> list[SegmentRecord]:
    """A mixed channel's stored segments with the speakers diarization settled on at the end of the call."""
    out: list[SegmentRecord] = []
    for segment in segments:
        words = [{**w, "speaker": label_of(refined, w["start"], w["end"])} for w in segment.words]
        out += split_by_speaker(replace(segment, words=words)) if words else [segment]
    return _merge_runs(out)


def _merge_runs(segments: list[SegmentRecord]) -> list[SegmentRecord]:
    """Pieces of one utterance that refinement gave the same speaker again are one segment."""
    out: list[SegmentRecord] = []
    for s in segments:
        last = out[-1] if out else None
        if last is not None and last.speaker == s.speaker and last.channel == s.channel and s.start - last.end < 0.05:
            out[-1] = replace(last, text=f"{last.text} {s.text}", end=s.end, words=[*last.words, *s.words])
        else:
            out.append(s)
    return out
