"""A call's logic in this process, with the fake engine and VAD (tests/fakes.py): no model, no network.

Calls open through ``CallLifecycle`` on a temporary SQLite store, as every ingest adapter opens them; audio goes in
as ``Audio`` through the ``LiveCall`` handle; what is checked is what a user would notice: the events on the bus
and the stored call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media_server.audio import Audio
from media_server.bus import InMemoryEventBus
from media_server.calls.call import CallServices, ChannelSpec
from media_server.calls.lifecycle import CallConflict, CallEnd, CallLifecycle, LiveCall
from media_server.calls.metadata import CallMetadata, Consent, ParticipantInfo, RecognitionOptions, Role
from media_server.config import Settings
from media_server.insights.nlp import Nlp, load_pipeline
from media_server.services import streaming_config
from media_server.store.journal import Journal
from media_server.store.records import CallRecord
from media_server.store.store import Store
from media_server.teams.config import TeamConfig
from media_server.teams.directory import TeamDirectory
from media_server.v1 import events_pb2 as pb
from models.asr.scheduler import DecodeScheduler
from tests.fakes import FakeEngine, FakeVAD, Voice, silence

RATE = 8000
FRAME = RATE // 50  # 20 ms, as telephony sends it
PAUSE_S = 0.9  # after each turn: longer than the default endpointing (500 ms), so the turn gets its final
TEAM = "acme"
BATTLECARD = "Zorvexa charges per seat for recordings."
TEAM_CONFIG = TeamConfig.model_validate(
    {
        "trackers": [{"name": "Zorvexa", "category": "competitors", "phrases": ["Zorvexa"]}],
        "battlecards": [{"tracker": "Zorvexa", "text": BATTLECARD}],
        "thresholds": {"monologue_s": 5},
    }
)
STEREO = [ChannelSpec(0, "rep", RATE), ChannelSpec(1, "customer", RATE)]


@dataclass
class Bench:
    calls: CallLifecycle
    store: Store
    voice: Voice
    engine: FakeEngine


@pytest.fixture(scope="module")
def nlp() -> Iterator[Nlp]:
    loaded = Nlp(load_pipeline(None))  # the trackers' spaCy pipeline, loaded once for the file
    yield loaded
    loaded.close()


@pytest.fixture
async def bench(tmp_path: Path, nlp: Nlp) -> AsyncIterator[Bench]:
    settings = Settings(data_dir=tmp_path)
    store = Store(settings.db_url)
    await store.open()
    bus = InMemoryEventBus()
    journal = Journal(store, bus)
    await journal.start()
    voice = Voice()
    engine = FakeEngine(voice)
    scheduler = DecodeScheduler(engine)
    services = CallServices(journal, FakeVAD(), scheduler, streaming_config(settings), settings.consent_policy, nlp)
    teams = TeamDirectory(store)
    await teams.set_config(TEAM, TEAM_CONFIG, "test")
    calls = CallLifecycle(services, store, teams)
    try:
        yield Bench(calls, store, voice, engine)
    finally:
        await calls.shutdown()
        await journal.close()
        await bus.close()
        scheduler.close()
        await store.close()


def metadata(
    rep: Consent = Consent.GRANTED, customer: Consent = Consent.GRANTED, keyterms: Sequence[str] = ()
) -> CallMetadata:
    return CallMetadata(
        rep=ParticipantInfo(Role.REP, name="Dana", consent=rep),
        customer=ParticipantInfo(Role.CUSTOMER, consent=customer),
        recognition=RecognitionOptions(keyterms=tuple(keyterms)),
    )


@dataclass
class Events:
    """A call's events as its subscriber receives them, collected in the background."""

    live: LiveCall
    received: list[pb.Event] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.live.events():
            self.received.append(event)
            self._changed.set()

    async def until(self, found: Callable[[list[pb.Event]], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not found(self.received):
                self._changed.clear()
                await self._changed.wait()

    async def final(self, text: str) -> pb.Transcript:
        """Wait for the final transcript that says ``text``."""
        await self.until(lambda _: any(t.text == text for t in self.finals()))
        return next(t for t in self.finals() if t.text == text)

    async def ended(self) -> pb.CallEnded:
        assert self._task is not None
        await asyncio.wait_for(self._task, 10)
        return self.of("call_ended")[-1].call_ended

    def of(self, kind: str) -> list[pb.Event]:
        return [e for e in self.received if e.type == kind]

    def finals(self, channel: int | None = None) -> list[pb.Transcript]:
        out = [e.transcript for e in self.of("transcript") if e.transcript.is_final]
        return out if channel is None else [t for t in out if t.channel == channel]


async def open_call(
    bench: Bench, meta: CallMetadata, channels: Sequence[ChannelSpec] = STEREO, call_id: str = "CA1"
) -> tuple[LiveCall, Events]:
    live = await bench.calls.open(call_id, TEAM, "test", meta, channels, subscribe=True)
    return live, Events(live)


def push(live: LiveCall, channel: int, pcm: npt.NDArray[np.int16]) -> None:
    for at in range(0, pcm.size, FRAME):
        live.push(Audio(channel, pcm[at : at + FRAME], RATE))


def turn(bench: Bench, live: LiveCall, channel: int, text: str, pause_s: float = PAUSE_S) -> None:
    """``channel`` says ``text`` and pauses; the call's other channels are silent meanwhile, as on a real line."""
    said = np.concatenate([bench.voice.say(text, RATE), silence(pause_s, RATE)])
    for other in live.channels:
        push(live, other, said if other == channel else np.zeros_like(said))


async def end(bench: Bench, live: LiveCall, reason: CallEnd = CallEnd.HANGUP) -> CallRecord:
    await live.end(reason)
    await live.close()
    stored = await bench.store.get_call(TEAM, live.id)
    assert stored is not None
    return stored


async def test_finals_arrive_on_the_bus_in_the_order_they_were_said_with_their_words_timed(bench: Bench) -> None:
    live, events = await open_call(bench, metadata())
    said = [(0, "hello this is Dana"), (1, "hi Dana"), (0, "how are you today"), (1, "fine thanks")]
    for channel, text in said:
        turn(bench, live, channel, text)
        await events.final(text)  # each turn waits for the one before it, as a conversation does
    await end(bench, live)
    assert [(t.channel, t.text) for t in events.finals()] == said
    first = events.finals()[0]
    assert [w.word for w in first.words] == ["hello", "this", "is", "Dana"]
    times = [t for w in first.words for t in (w.start, w.end)]
    assert times == pytest.approx([0.0, 0.3, 0.4, 0.7, 0.8, 1.1, 1.2, 1.5], abs=0.02)  # as said, on the call clock
    second = events.finals()[1]  # the customer spoke after the rep's turn and pause: on the same call clock
    turn_s = bench.voice.duration("hello this is Dana") + PAUSE_S
    assert second.words[0].start == pytest.approx(turn_s, abs=0.02)
    assert [t.speaker for t in events.finals()] == ["rep", "customer", "rep", "customer"]


async def test_a_customer_who_denied_consent_is_never_transcribed_nor_stored(bench: Bench) -> None:
    live, events = await open_call(bench, metadata(customer=Consent.DENIED))
    turn(bench, live, 1, "my name is Alex")
    turn(bench, live, 0, "thanks for calling")
    await events.final("thanks for calling")
    stored = await end(bench, live)
    started = events.of("call_started")[0].call_started
    assert [(c.speaker, c.transcribed) for c in started.channels] == [("rep", True), ("customer", False)]
    assert [t.text for t in events.finals()] == ["thanks for calling"]
    assert not [e for e in events.of("transcript") if e.transcript.channel == 1]
    assert not any("Alex" in text for text in bench.engine.heard)  # its audio never reached the engine
    assert [(s.channel, s.text) for s in stored.segments] == [(0, "thanks for calling")]


async def test_consent_withdrawn_mid_call_drops_that_channels_segments(bench: Bench) -> None:
    live, events = await open_call(bench, metadata())
    turn(bench, live, 0, "can I record this call")
    await events.final("can I record this call")
    turn(bench, live, 1, "yes you can")
    await events.final("yes you can")
    withdrawn = metadata(customer=Consent.DENIED)
    await live.update(withdrawn, STEREO)
    turn(bench, live, 1, "actually no please stop")
    turn(bench, live, 0, "of course stopping now")
    await events.final("of course stopping now")
    stored = await end(bench, live)
    updated = events.of("call_updated")[-1].call_updated
    assert [(c.speaker, c.transcribed) for c in updated.channels] == [("rep", True), ("customer", False)]
    assert "actually no please stop" not in [t.text for t in events.finals()]
    assert not any("actually" in text for text in bench.engine.heard)
    assert [(s.channel, s.text) for s in stored.segments] == [
        (0, "can I record this call"),
        (0, "of course stopping now"),
    ]
    customer = next(p for p in stored.participants if p.role == "customer")
    assert customer.consent == "denied"


async def test_a_withdrawal_mid_call_also_leaves_the_event_log(bench: Bench) -> None:
    """What a resuming subscriber is replayed from the store: the customer who withdrew is not in it any more, neither
    their words nor their name and number in the call's earlier ``call_started``."""
    meta = metadata()
    meta.customer.name, meta.customer.phone = "Pat Doe", "+15550001111"
    live, events = await open_call(bench, meta)
    turn(bench, live, 1, "yes you can")
    await events.final("yes you can")
    withdrawn = metadata(customer=Consent.DENIED)
    withdrawn.customer.name, withdrawn.customer.phone = "Pat Doe", "+15550001111"
    await live.update(withdrawn, STEREO)
    turn(bench, live, 0, "of course stopping now")
    await events.final("of course stopping now")
    await end(bench, live)
    assert events.of("call_started")[0].call_started.participants[1].phone == "+15550001111", "live, it was shown"

    replay = bench.calls.services.journal.subscribe(TEAM, live.id, after=0)
    replayed = []
    async with asyncio.timeout(5):
        async for event in replay:
            replayed.append(event)
            if event.type == "call_ended":
                break
    replay.close()
    assert replayed[0].type == "call_started"
    for e in replayed:
        assert "Pat" not in str(e) and "5550001111" not in str(e), e
    assert [e.transcript.text for e in replayed if e.type == "transcript"] == ["of course stopping now"]


async def test_a_card_number_read_out_is_redacted_in_the_final_and_the_stored_record(bench: Bench) -> None:
    live, events = await open_call(bench, metadata())
    turn(bench, live, 0, "what is the card number")
    turn(bench, live, 1, "it is 4111 1111 1111 1111 thanks")
    final = await events.final("it is [CARD] thanks")
    stored = await end(bench, live)
    assert [w.word for w in final.words] == ["it", "is", "[CARD]", "thanks"]
    card = final.words[2]  # one placeholder word that spans the four groups of digits
    assert card.start == pytest.approx(final.words[1].end + 0.1, abs=0.02)
    assert card.end == pytest.approx(final.words[3].start - 0.1, abs=0.02)
    transcripts = [e.transcript for e in events.of("transcript")]
    assert not any("4111" in t.text or "1111" in t.text for t in transcripts)  # interims included
    assert not any("1111" in w.word for t in transcripts for w in t.words)
    (segment,) = [s for s in stored.segments if s.channel == 1]
    assert segment.text == "it is [CARD] thanks"
    assert [w["word"] for w in segment.words] == ["it", "is", "[CARD]", "thanks"]


async def test_a_keyterm_said_is_favoured_by_the_decoder_and_gives_a_keyword_hit(bench: Bench) -> None:
    live, events = await open_call(bench, metadata(keyterms=["Quantix"]))
    turn(bench, live, 1, "we looked at Quantix last year")
    final = await events.final("we looked at Quantix last year")
    await events.until(lambda _: bool(events.of("keyword_hit")))
    await end(bench, live)
    assert all("Quantix" in r.hotwords for r in bench.engine.requests)
    (hit,) = [e.keyword_hit for e in events.of("keyword_hit")]
    said = final.words[3]
    assert (hit.keyword, hit.category, hit.channel, hit.speaker) == ("Quantix", "keyterm", 1, "customer")
    assert (hit.start, hit.end, hit.segment) == (said.start, said.end, final.segment)


async def test_a_competitor_mentioned_fires_its_tracker_and_shows_its_battlecard(bench: Bench) -> None:
    live, events = await open_call(bench, metadata())
    turn(bench, live, 1, "we use Zorvexa today")
    await events.final("we use Zorvexa today")
    await events.until(lambda _: bool(events.of("cue")))
    await end(bench, live)
    (hit,) = [e.keyword_hit for e in events.of("keyword_hit")]
    assert (hit.keyword, hit.category, hit.speaker) == ("Zorvexa", "competitors", "customer")
    (cue,) = [e.cue for e in events.of("cue") if e.cue.kind == "competitor"]
    assert cue.message == f"The customer mentioned Zorvexa. {BATTLECARD}"
    assert dict(cue.detail) == {"competitor": "Zorvexa", "battlecard": BATTLECARD}


async def test_a_long_monologue_fires_its_cue_once(bench: Bench) -> None:
    live, events = await open_call(bench, metadata())
    monologue = ["let me tell you about our plans", "the basic plan has everything", "and the premium plan adds more"]
    for text in monologue:  # 1.9-2.7 s each, 0.9 s pauses: past the team's monologue_s (5 s) in the second
        turn(bench, live, 0, text)
    await events.final(monologue[-1])
    turn(bench, live, 0, "and one more thing")
    await events.final("and one more thing")
    await end(bench, live)
    cues = [e.cue for e in events.of("cue") if e.cue.kind == "monologue"]
    assert len(cues) == 1
    finals = events.finals()
    began = finals[0].words[0].start
    past = next(t for t in finals if t.words[-1].end - began >= 5)  # the first final that takes it past 5 s
    assert past.text == monologue[1]
    assert cues[0].time == pytest.approx(past.words[-1].end)
    assert cues[0].detail["seconds"] == f"{past.words[-1].end - began:.0f}"


@pytest.mark.parametrize(
    ("reason", "status"),
    [(CallEnd.HANGUP, "completed"), (CallEnd.STOP, "completed"), (CallEnd.DISCONNECTED, "interrupted")],
)
async def test_ending_the_call_stores_it_with_the_status_of_its_reason(
    bench: Bench, reason: CallEnd, status: str
) -> None:
    live, events = await open_call(bench, metadata())
    turn(bench, live, 0, "thank you for your time")
    push(live, 0, bench.voice.say("goodbye now", RATE))  # no pause after it: the end itself gives its final
    push(live, 1, silence(2.0, RATE))
    stored = await end(bench, live, reason)
    ended = await events.ended()
    assert (stored.status, stored.end_reason) == (status, reason.value)
    assert (ended.status, ended.reason) == (status, reason.value)
    assert [s.text for s in stored.segments] == ["thank you for your time", "goodbye now"]
    assert [t.text for t in events.finals()] == ["thank you for your time", "goodbye now"]
    assert events.received[-1].type == "call_ended"
    assert not live.live


async def test_a_call_id_is_taken_while_the_call_is_live_and_after_it_is_stored(bench: Bench) -> None:
    live, _ = await open_call(bench, metadata())
    with pytest.raises(CallConflict):
        await bench.calls.open("CA1", TEAM, "test", metadata(), STEREO)
    await end(bench, live)
    with pytest.raises(CallConflict):
        await bench.calls.open("CA1", TEAM, "test", metadata(), STEREO)
    other = await bench.calls.open("CA2", TEAM, "test", metadata(), STEREO)  # a new id is free
    await other.close(CallEnd.HANGUP)
    assert await bench.store.get_call(TEAM, "CA2") is not None
