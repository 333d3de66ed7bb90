"""The one way a call opens, takes audio, changes, and ends, whatever protocol carries it.

Every ingest adapter (Twilio, Telnyx, L16, AudioSocket, SIPREC, WHIP, Deepgram, Riva, gRPC ``StreamCall``) is
a thin translation of its wire format onto this module:

- :meth:`CallLifecycle.authorize` checks an API key that may ingest (protocols that carry one);
- :meth:`CallLifecycle.open` claims the call id, unique per team (live or stored, on this server or another one
  sharing the database: the calls table's key decides; :class:`CallConflict`), checks the server's
  capacity (:class:`CallsFull`, with a retry delay), applies the protocol's consent default to every participant
  the protocol said nothing about, starts the call and returns its :class:`LiveCall` handle;
- :meth:`LiveCall.push` takes :class:`~media_server.audio.Audio` at the channel's rate
  (:func:`~media_server.audio.call_rate`); :meth:`LiveCall.update` changes participants, consent, channels and
  hold; :meth:`LiveCall.dtmf`, :meth:`LiveCall.notice` and :meth:`LiveCall.finalize` are the rest;
- :meth:`LiveCall.end` with a :class:`CallEnd` finalises, stores and announces the call exactly once, also when
  the adapter's task is cancelled; :meth:`CallLifecycle.shutdown` ends every live call as ``server_shutdown``.

A client that reads its own call's events back (gRPC, Riva, Deepgram) opens with ``subscribe=True`` and
iterates :meth:`LiveCall.events`: the subscription is taken before the call starts, so it sees every event of
its call from ``call_started`` on, and none of another call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence

from google.protobuf import json_format

from media_server.audio import Audio
from media_server.auth.keys import ApiKey
from media_server.bus import Subscription
from media_server.calls import views
from media_server.calls.call import Call, CallServices, ChannelSpec
from media_server.calls.metadata import CallMetadata, Consent
from media_server.events import new_event
from media_server.insights.metrics import CallMetrics, Said, compute
from media_server.logs import about_call
from media_server.store.journal import CallIdTaken, StorageFailed
from media_server.store.records import CallRecord
from media_server.store.store import CallKey, Store
from media_server.store.writes import CallClosed
from media_server.teams.config import TeamConfig
from media_server.teams.directory import TeamDirectory
from media_server.v1 import events_pb2 as pb
from models.asr.engine import Word

log = logging.getLogger(__name__)


class CallStatus(enum.StrEnum):
    COMPLETED = "completed"  # the call's own end: a stop message, a hang-up, a BYE, a DELETE
    INTERRUPTED = "interrupted"  # anything else: what was transcribed so far is kept


class CallEnd(enum.StrEnum):
    """Why a call ended; each reason implies its :class:`CallStatus`."""

    STOP = "stop"  # the protocol's stop message (Twilio/Telnyx stop, Deepgram CloseStream, gRPC end, Riva's end)
    CLOSED = "closed"  # a normal websocket close where closing is how the protocol ends a call (jambonz, L16)
    HANGUP = "hangup"  # AudioSocket's hang-up message
    BYE = "bye"  # SIP BYE (SIPREC)
    WHIP_DELETE = "whip_delete"  # the WHIP client's DELETE of its session
    DISCONNECTED = "disconnected"  # the connection went away without the protocol's end
    IDLE_TIMEOUT = "idle_timeout"  # no audio for ``ingest.idle_timeout_s``
    RTP_TIMEOUT = "rtp_timeout"  # no RTP on any stream for ``sip.rtp_timeout_s``
    NO_ACK = "no_ack"  # SIP: the SRC never acknowledged the 200 OK to its INVITE
    SESSION_EXPIRED = "session_expired"  # SIP: the session timer (RFC 4028) ran out without a refresh
    ICE_FAILED = "ice_failed"  # a WebRTC peer's connection failed
    PROTOCOL_ERROR = "protocol_error"  # a malformed or forbidden message; the client was told which
    INTERNAL_ERROR = "internal_error"  # a bug on our side; logged with its traceback
    SETUP_FAILED = "setup_failed"  # the media of a call could not be set up (ports, codecs)
    SERVER_SHUTDOWN = "server_shutdown"  # the server stopped (SIGTERM) with the call live
    SERVER_RESTART = "server_restart"  # the server died with the call live; closed when it started again
    STORAGE_FAILED = "storage_failed"  # the call's events could not be written (disk full, database gone)
    NODE_LOST = "node_lost"  # the server holding the call stopped renewing its lease; closed by another server
    TOO_FAST = "too_fast"  # its audio came further ahead of real time than ``calls.pacing`` allows
    KEY_REVOKED = "key_revoked"  # the API key that opened the call was revoked or expired (auth/sessions.py)

    @property
    def status(self) -> CallStatus:
        return CallStatus.COMPLETED if self in _COMPLETED else CallStatus.INTERRUPTED


_COMPLETED = frozenset({CallEnd.STOP, CallEnd.CLOSED, CallEnd.HANGUP, CallEnd.BYE, CallEnd.WHIP_DELETE})


class CallRefused(Exception):
    """A call that may not open; ``code`` is what the adapter tells its client (each maps it to its protocol)."""

    code = "refused"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def reason(self) -> str:
        """What ``/metrics`` counts it as (``media_server_call_refusals_total{reason}``)."""
        return self.code


class Unauthorized(CallRefused):
    code = "unauthorized"


class Forbidden(CallRefused):
    code = "forbidden"


class CallConflict(CallRefused):
    """The team has a call with this id already, live (on any server) or stored."""

    code = "call_conflict"


class InvalidCallId(CallConflict):
    """A call id the store cannot keep (empty, longer than :data:`MAX_CALL_ID`, control characters); refused like a
    taken one."""

    code = "invalid_call_id"


MAX_CALL_ID = 128  # characters: the calls table's id column


class CallsFull(CallRefused):
    """The server holds ``calls.max_live`` calls already; try again after ``retry_after_s``."""

    code = "at_capacity"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class SourceFull(CallsFull):
    """Over ``calls.max_by_source`` for the call's protocol (told like :class:`CallsFull`)."""

    reason = "source_limit"


class Unavailable(CallsFull):
    """The server takes no calls for now: it shuts down, or its store fails (gRPC: UNAVAILABLE, not
    RESOURCE_EXHAUSTED); elsewhere refused as busy, like :class:`CallsFull`."""

    code = "unavailable"


class LiveCalls:
    """The calls this server holds, by team and call id (two teams may use the same call id)."""

    def __init__(self) -> None:
        self._calls: dict[CallKey, Call] = {}

    def find(self, team: str, call_id: str) -> Call | None:
        return self._calls.get((team, call_id))

    def get(self, call_id: str, team: str | None = None) -> Call | None:
        """The call of this id of ``team``; without a team, of any team (the first opened)."""
        if team is not None:
            return self.find(team, call_id)
        return next((c for (_, i), c in self._calls.items() if i == call_id), None)

    def add(self, call: Call) -> None:
        self._calls[call.team, call.id] = call

    def pop(self, team: str, call_id: str) -> Call | None:
        return self._calls.pop((team, call_id), None)

    def values(self) -> list[Call]:
        return list(self._calls.values())

    def __contains__(self, item: object) -> bool:
        """``(team, call_id)``, or a call id of any team."""
        if isinstance(item, tuple):
            return item in self._calls
        return any(i == item for _, i in self._calls)

    def __iter__(self) -> Iterator[str]:
        """The call ids (of every team)."""
        return iter([i for _, i in self._calls])

    def __len__(self) -> int:
        return len(self._calls)

    def count(self, source: str) -> int:
        """The live calls that came in over ``source`` (``twilio``, ``l16``, ...)."""
        return sum(1 for c in self._calls.values() if c.source == source)


def new_call_id(prefix: str) -> str:
    """An id for a call whose protocol names none (Deepgram, Riva, gRPC without one)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class LiveCall:
    """One open call, as its adapter sees it. Made by :meth:`CallLifecycle.open`."""

    def __init__(self, lifecycle: CallLifecycle, call: Call, subscription: Subscription | None) -> None:
        self._lifecycle = lifecycle
        self.call = call
        self._subscription = subscription
        self._ended: asyncio.Task[CallRecord] | None = None

    @property
    def id(self) -> str:
        return self.call.id

    @property
    def team(self) -> str:
        return self.call.team

    @property
    def metadata(self) -> CallMetadata:
        return self.call.metadata

    @property
    def channels(self) -> dict[int, ChannelSpec]:
        return {index: channel.spec for index, channel in self.call.channels.items()}

    @property
    def epoch(self) -> float:
        """Call time 0 on the monotonic clock (for adapters that place audio by their own clock, RTP)."""
        return self.call.epoch

    @property
    def last_audio(self) -> float:
        """When audio last arrived (monotonic): the idle timeout counts from here."""
        return self.call.last_audio

    @property
    def live(self) -> bool:
        """Not ended (by this adapter or elsewhere: shutdown, a consent withdrawal that ends it)."""
        return self._ended is None and self._lifecycle.live.find(self.call.team, self.call.id) is self.call

    @property
    def end_reason(self) -> CallEnd | None:
        """Why the call ended, by whoever ended it (this adapter, a shutdown, a storage failure); None while live."""
        return self.call.end_reason  # type: ignore[return-value]

    async def ended(self) -> CallEnd:
        """Wait until the call ends, by this adapter or by the server (shutdown, storage failure): an adapter
        races this against its peer's next message and tells the peer why (close code, BYE)."""
        await self.call.ending.wait()
        reason = self.call.end_reason
        assert isinstance(reason, CallEnd)
        return reason

    def push(self, audio: Audio) -> None:
        """Audio of one channel, at that channel's rate, in call order. ``ValueError`` for an undeclared channel."""
        channel = self.call.channels.get(audio.channel)
        if channel is None:
            raise ValueError(f"audio for channel {audio.channel}, which the call did not declare")
        if audio.sample_rate != channel.spec.sample_rate:
            raise ValueError(
                f"audio at {audio.sample_rate} Hz for channel {audio.channel}, which is {channel.spec.sample_rate} Hz"
            )
        self.call.push(audio)
        self._too_fast()

    def pace_s(self) -> float:
        """How long the adapter should wait before it reads the peer's next message: the seconds its audio is ahead
        of real time beyond the burst allowance (``calls/pacing.py``); 0 for batch work and unpaced calls."""
        wait = self.call.pace.hold()
        self._too_fast()
        return wait

    def _too_fast(self) -> None:
        """End the call (``too_fast``) once its pace says so; its adapter's watch tells the peer (calls/watch.py)."""
        if self.call.pace.too_fast and self._ended is None and not self.call.ending.is_set():
            why = self.call.pace.refusal()
            log.warning("call %s (%s, team %s) ended: %s", self.call.id, self.call.source, self.call.team, why)
            asyncio.get_running_loop().create_task(self.call.error(CallEnd.TOO_FAST.value, why))
            self.end(CallEnd.TOO_FAST)

    def finalize(self, channel: int | None = None) -> None:
        """Finalise what each channel (or one) has heard so far, now, without waiting for a pause (Deepgram's
        Finalize)."""
        if channel is None:
            self.call.finalize()
            return
        recognizer = self.call.channels[channel].recognizer
        if recognizer is not None:
            recognizer.finalize()

    def transcribing(self, channel: int) -> bool:
        """Whether the channel's audio is being transcribed now (its voices consented, none withdrew)."""
        return self.call.channels[channel].recognizer is not None

    def position(self, channel: int) -> float:
        """Seconds of audio on the channel's timeline so far (what a protocol reports as audio processed)."""
        return self.call.channels[channel].position

    async def dtmf(self, channel: int, digit: str) -> None:
        await self.call.dtmf(channel, digit)

    async def notice(self, code: str, message: str) -> None:
        """Tell the call's subscribers something went wrong (an ``error`` event); the call goes on."""
        await self.call.error(code, message)

    async def update(
        self, metadata: CallMetadata, channels: Sequence[ChannelSpec], on_hold: frozenset[int] = frozenset()
    ) -> None:
        """New participants (names, consent), channels or hold, mid-call (SIPREC re-INVITE, a WHIP leg)."""
        await self.call.reconfigure(metadata, list(channels), on_hold)

    async def events(self) -> AsyncIterator[pb.Event]:
        """The call's events, ending after ``call_ended``. A client that reads too slowly is cut off with
        ``SubscriberTooSlow``: the call itself never waits for it."""
        if self._subscription is None:
            raise RuntimeError("this call was opened without subscribe=True")
        async for event in self._subscription:
            yield event
            if event.type == "call_ended":
                return

    def end(self, reason: CallEnd) -> asyncio.Task[CallRecord]:
        """Finalise, store and announce the call (once; later calls return the same task)."""
        if self._ended is None:
            self._ended = self._lifecycle.end(self.call, reason)
        return self._ended

    async def close(self, reason: CallEnd = CallEnd.DISCONNECTED) -> None:
        """The adapter is done (its client is gone, or the call ended): end the call if nobody did, wait for it
        to be stored (even if the adapter's task is being cancelled), and drop the subscription."""
        task = self.end(reason)
        with contextlib.suppress(Exception):
            await asyncio.shield(task)
        if self._subscription is not None:
            self._subscription.close()


class CallLifecycle:
    """The server's live calls: opens them (capacity, id, consent defaults), ends each exactly once, stores it,
    announces it."""

    def __init__(
        self,
        services: CallServices,
        store: Store,
        teams: TeamDirectory | None = None,
        max_live: int = 1000,
        retry_after_s: int = 5,
        drain_timeout_s: float = 10.0,
        max_by_source: Mapping[str, int] | None = None,
    ) -> None:
        self.services = services
        self.max_by_source = dict(max_by_source or {})
        self.store = store
        self.teams = teams
        self.max_live = max_live
        self.retry_after_s = retry_after_s
        self.drain_timeout_s = drain_timeout_s
        self.live = LiveCalls()
        self._ending: dict[CallKey, asyncio.Task[CallRecord]] = {}
        self._closing = False
        self.refusals: Counter[str] = Counter()  # calls refused, by reason (/metrics)
        self.endings: Counter[str] = Counter()  # calls ended, by reason (/metrics)

    @property
    def closing(self) -> bool:
        """Shutting down: no new call opens."""
        return self._closing

    @property
    def full(self) -> bool:
        """No new call may open now (``calls.max_live`` reached, the store failing, or shutting down): for
        keep-alives that say so."""
        return self._closing or not self.services.journal.healthy or len(self.live) >= self.max_live

    async def authorize(self, secret: str | None, team: str | None = None) -> ApiKey:
        """The ingest key a protocol presented; ``team``: the team the stream says it belongs to, if it says."""
        key = await self.store.find_key(secret) if secret else None
        if key is None or not key.can("ingest"):
            self.refusals[Unauthorized.code] += 1
            raise Unauthorized("invalid API key" if secret else "missing API key")
        if team and team != key.team:
            self.refusals[Forbidden.code] += 1
            raise Forbidden(f"this key belongs to team {key.team!r}, not {team!r}")
        return key

    async def open(
        self,
        call_id: str,
        team: str,
        source: str,
        metadata: CallMetadata,
        channels: Sequence[ChannelSpec],
        *,
        consent_default: Consent | None = None,
        subscribe: bool = False,
        epoch: float | None = None,
        batch: bool = False,
    ) -> LiveCall:
        """:meth:`_open`, with what it refuses counted by reason (every protocol's calls open here)."""
        try:
            return await self._open(
                call_id,
                team,
                source,
                metadata,
                channels,
                consent_default=consent_default,
                subscribe=subscribe,
                epoch=epoch,
                batch=batch,
            )
        except CallRefused as refused:
            self.refusals[refused.reason] += 1
            raise

    async def _open(
        self,
        call_id: str,
        team: str,
        source: str,
        metadata: CallMetadata,
        channels: Sequence[ChannelSpec],
        *,
        consent_default: Consent | None = None,
        subscribe: bool = False,
        epoch: float | None = None,
        batch: bool = False,
    ) -> LiveCall:
        """Open a call. ``consent_default``: the consent of every participant the protocol said nothing about
        (``consent_given`` False: AudioSocket's ``audiosocket.consent``, Deepgram's and Riva's ``compat.consent``);
        ``epoch``: call time 0 on the monotonic clock, when the adapter's own clock started earlier (RTP);
        ``batch``: the whole audio comes at once (Riva ``Recognize``): not paced, decoded when no live work waits.

        Raises :class:`CallConflict` (the team's call id is live or stored), :class:`CallsFull` (over
        ``calls.max_live``), :class:`Unavailable` (the store fails).
        """
        if self._closing:
            raise Unavailable("the server is shutting down", self.retry_after_s)
        journal = self.services.journal
        if not journal.healthy:
            raise Unavailable(f"calls cannot be stored now ({journal.failure})", self.retry_after_s)
        if not call_id or len(call_id) > MAX_CALL_ID:
            raise InvalidCallId(f"a call id has 1-{MAX_CALL_ID} characters, not {len(call_id)}")
        if not call_id.isprintable() or call_id != call_id.strip():
            # (a newline, an escape or a NUL in an id would forge log lines and reach the database as they are)
            raise InvalidCallId("a call id may not hold control characters or surrounding spaces")
        key = (team, call_id)
        if key in self.live or key in self._ending:
            raise CallConflict(f"call {call_id!r} is already live")
        if len(self.live) >= self.max_live:
            raise CallsFull(f"the server holds {self.max_live} calls, its limit (calls.max_live)", self.retry_after_s)
        limit = self.max_by_source.get(source)
        if limit is not None and self.live.count(source) >= limit:
            raise SourceFull(
                f"the server holds {limit} {source} calls, its limit (calls.max_by_source.{source})", self.retry_after_s
            )
        if consent_default is not None:
            for participant in metadata.participants:
                if not participant.consent_given:  # what the stream said, even "unknown", stands
                    participant.consent = consent_default
        team_config = await self.teams.config(team) if self.teams is not None else None
        # (checked again after the await: another open of the same id may have claimed it meanwhile)
        if key in self.live or key in self._ending:
            raise CallConflict(f"call {call_id!r} is already live")
        call = Call(call_id, team, source, metadata, list(channels), self.services, team_config, batch=batch)
        if epoch is not None:
            call.epoch = call.last_audio = epoch
        about_call(call_id, team)  # (the lines of this task and of the call's tasks say which call they are about)
        self.live.add(call)  # claim the id on this server before any await
        subscription = journal.subscribe(team, call_id) if subscribe else None
        try:
            if await self.store.call_exists(team, call_id):  # (the common case, before anything starts)
                raise CallConflict(f"call {call_id!r} already exists; use a new call id")
            try:
                await call.start()  # the database decides: another server may have opened this id meanwhile
            except CallIdTaken:
                raise CallConflict(f"call {call_id!r} already exists; use a new call id") from None
            except StorageFailed as exc:
                why = "the server is shutting down" if self._closing else f"calls cannot be stored now ({exc})"
                raise Unavailable(why, self.retry_after_s) from None
        except BaseException:
            if call.end_task is None:  # (a call that the store's failure ended leaves once it has ended)
                self.live.pop(team, call_id)
            if subscription is not None:
                subscription.close()
            raise
        log.info("call %s started (%s, team %s, channels %s)", call_id, source, team, [c.speaker for c in channels])
        return LiveCall(self, call, subscription)

    def end(self, call: Call, reason: CallEnd) -> asyncio.Task[CallRecord]:
        """Finalize, store and announce the call once; later calls get the same task (also after it is done)."""
        if call.end_task is None:
            call.end_reason = reason
            call.ending.set()
            call.end_task = asyncio.create_task(self._end(call, reason), name=f"end-{call.id}")
            self._ending[call.team, call.id] = call.end_task
        return call.end_task

    async def _end(self, call: Call, reason: CallEnd) -> CallRecord:
        about_call(call.id, call.team)
        self.endings[reason.value] += 1
        try:
            drain = self.drain_timeout_s if reason is CallEnd.SERVER_SHUTDOWN else None
            record = await call.finish(reason.status, reason, drain)
            ended = call_ended_pb(record)
            closed = CallClosed(record, call.relabelled, call.team_config.time_zone)
            event = await call.publish(closed, call_ended=ended)
            try:
                await self.services.journal.committed(event)
            except StorageFailed as exc:
                log.error("call %s ended (%s) but could not be stored: %s", call.id, reason, exc)
                call.end_reason = CallEnd.STORAGE_FAILED
                # Its subscribers learn that it ended, and that it is not stored (a notice, id 0: not in the log).
                lost = pb.CallEnded()
                lost.CopyFrom(ended)
                lost.status, lost.reason = CallEnd.STORAGE_FAILED.status, CallEnd.STORAGE_FAILED
                await self.services.journal.notice(call.id, call.team, call_ended=lost)
                raise
            log.info(
                "call %s ended: %s (%s), %d segments",
                call.id,
                record.status,
                record.end_reason,
                len(record.segments),
            )
            return record
        finally:
            self.live.pop(call.team, call.id)
            self._ending.pop((call.team, call.id), None)

    def storage_failed(self, calls: set[CallKey], reason: str) -> None:
        """The journal cannot store these calls' events: end them (``storage_failed``), so that their peers are
        told at once; their subscribers get an ``error`` event now."""
        for team, call_id in calls:
            call = self.live.find(team, call_id)
            if call is None:
                continue
            error = pb.Error(code="storage_failed", message=f"the call cannot be stored: {reason}")
            asyncio.get_running_loop().create_task(self.services.journal.notice(call.id, call.team, error=error))
            self.end(call, CallEnd.STORAGE_FAILED)  # (a call already ending keeps its reason)

    async def recover(self) -> None:
        """Close the calls this server left live when it died (a crash, SIGKILL, a power cut) as ``interrupted``
        with reason ``server_restart``, with their figures computed from what was stored of them; their
        ``call_ended`` goes out like any other, for subscribers that resume."""
        await self._close_stored(CallEnd.SERVER_RESTART)

    async def take_over(self, nodes: list[str]) -> None:
        """Close the calls of servers whose lease ran out (``Store.take_over`` made them this server's) as
        ``interrupted`` with reason ``node_lost``, the same way."""
        await self._close_stored(CallEnd.NODE_LOST, nodes)

    async def _close_stored(self, reason: CallEnd, lost: list[str] | None = None) -> None:
        journal = self.services.journal
        for stored in await self.store.live_calls(journal.node):
            if (stored.team, stored.id) in self.live or (stored.team, stored.id) in self._ending:
                continue  # (this server's own live call)
            last = await self.store.last_event_time(stored.team, stored.id)
            stored.ended_at = max(last or stored.started_at, stored.started_at)
            stored.status, stored.end_reason = reason.status, reason
            team_config = await self.teams.config(stored.team) if self.teams is not None else None
            stored.speakers = views.speaker_records(stored.segments)
            metrics = stored_metrics(stored, team_config)
            stored.metrics, stored.disposition = metrics.to_json(), metrics.disposition
            ended = call_ended_pb(stored)
            closed = CallClosed(stored, time_zone=team_config.time_zone if team_config is not None else "UTC")
            event = journal.append(new_event(stored.id, stored.team, call_ended=ended), closed)
            await journal.committed(event)
            if lost is None:
                log.warning(
                    "call %s was live when this server stopped: closed as interrupted (%s), %d segments kept",
                    stored.id,
                    reason.value,
                    len(stored.segments),
                )
            else:
                log.warning(
                    "call %s of team %s was live on server %s, whose lease ran out: closed as interrupted (%s), "
                    "%d segments kept",
                    stored.id,
                    stored.team,
                    "/".join(lost),
                    reason.value,
                    len(stored.segments),
                )

    async def shutdown(self) -> None:
        """Refuse new calls and end every live call as interrupted (``server_shutdown``): each open utterance is
        finalised within ``drain_timeout_s`` (then cut), stored, and each adapter tells its peer."""
        self._closing = True
        tasks = [self.end(call, CallEnd.SERVER_SHUTDOWN) for call in list(self.live.values())]
        tasks += list(self._ending.values())
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def call_ended_pb(record: CallRecord) -> pb.CallEnded:
    return pb.CallEnded(
        status=record.status,
        reason=record.end_reason,
        duration=round(record.duration, 3),
        speakers=[
            pb.SpeakerStats(speaker=s.speaker, talk_time=s.talk_time, word_count=s.word_count) for s in record.speakers
        ],
        metrics=json_format.ParseDict(record.metrics, pb.CallMetrics(), ignore_unknown_fields=True),
    )


def stored_metrics(record: CallRecord, team_config: TeamConfig | None) -> CallMetrics:
    """A call's metrics from its stored segments (a call closed after a crash: nothing else is left of it)."""
    config = team_config or TeamConfig()
    said = [
        Said(
            s.speaker,
            s.start,
            s.end,
            s.text,
            [
                Word(w.get("word", ""), w.get("start", 0.0), w.get("end", 0.0), w.get("confidence", 0.0))
                for w in s.words
            ],
        )
        for s in record.segments
    ]
    hits = dict(record.metrics.get("trackerHits") or {})  # the last snapshot's (hits need the live trackers)
    customer_heard = any(c.transcribed and c.speaker == "customer" for c in record.channels)
    metrics = compute(
        said,
        record.duration,
        config.fillers,
        hits,
        overlap_s=config.thresholds.interruption_overlap_s,
        customer_heard=customer_heard,
    )
    metrics.disposition = config.disposition(hits)
    return metrics
