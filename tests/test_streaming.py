"""Streaming recognition of one channel with the real VAD and the real Whisper tiny.en engine."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import numpy as np
import pytest

from models.asr.engine import DecodeRequest, Hypothesis, Word
from models.asr.scheduler import DecodeScheduler
from models.asr.whisper_ct2 import WhisperCT2Engine
from models.audio import resample
from models.streaming import SpeechEvent, SpeechEventType, StreamingConfig, StreamingRecognizer, _carried_head
from models.vad import SileroVAD
from tests.fakes import FakeEngine, FakeVAD, Voice, silence
from tests.speech import program, tel8k, wer


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.fixture
async def scheduler() -> AsyncIterator[DecodeScheduler]:
    sched = DecodeScheduler(WhisperCT2Engine(cpu_threads=2))
    yield sched
    sched.close()


async def run(recognizer: StreamingRecognizer, pcm: np.ndarray, realtime_factor: float = 8.0) -> list[SpeechEvent]:
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in recognizer.events():
            events.append(event)

    task = asyncio.create_task(consume())
    frame = recognizer.sample_rate // 50
    for offset in range(0, len(pcm), frame):
        recognizer.push(pcm[offset : offset + frame])
        await asyncio.sleep(0.02 / realtime_factor)
    recognizer.end()
    await asyncio.wait_for(task, 60)
    return events


async def test_one_final_per_utterance_with_interims_before_it(vad: SileroVAD, scheduler: DecodeScheduler) -> None:
    prog = program(tel8k(), gap_s=1.2)
    events = await run(StreamingRecognizer(8000, vad, scheduler), prog.pcm, realtime_factor=4)
    finals = [e for e in events if e.type is SpeechEventType.FINAL]
    assert len(finals) == len(prog.spans)
    assert wer([u.ref for _, _, u in prog.spans], [f.text for f in finals]) <= 0.15
    for (start, end, _u), final in zip(prog.spans, finals, strict=True):
        # Word times are call times: inside the utterance's span (with the VAD's padding).
        assert start - 0.4 <= final.words[0].start and final.words[-1].end <= end + 0.4
    by_segment: dict[int, list[SpeechEventType]] = {}
    for e in events:
        by_segment.setdefault(e.segment, []).append(e.type)
    for types in by_segment.values():
        assert types[0] is SpeechEventType.START_OF_SPEECH
        # One final, then (the gaps are 1.2 s, over utterance_end_ms) one utterance end.
        assert types[-2:] == [SpeechEventType.FINAL, SpeechEventType.UTTERANCE_END]
        assert types.count(SpeechEventType.FINAL) == 1
    long_utterances = [seg for seg, types in by_segment.items() if SpeechEventType.INTERIM in types]
    assert len(long_utterances) >= len(prog.spans) - 2, "utterances over a second get interim results"


async def test_text_marked_stable_never_changes(vad: SileroVAD, scheduler: DecodeScheduler) -> None:
    prog = program(sorted(tel8k(), key=lambda u: -u.duration)[:3], gap_s=1.0)
    config = StreamingConfig(final_keeps_stable=True)  # by default the final may still correct a stable word
    events = await run(StreamingRecognizer(8000, vad, scheduler, config), prog.pcm, realtime_factor=2)
    stable_seen = 0
    for segment in {e.segment for e in events}:
        results = [e for e in events if e.segment == segment and e.type is not SpeechEventType.START_OF_SPEECH]
        results = [e for e in results if e.type is not SpeechEventType.UTTERANCE_END]
        final = results[-1]
        assert final.type is SpeechEventType.FINAL and final.stability == 1.0 and final.stable_text == final.text
        previous = ""
        for e in results[:-1]:
            assert e.text.startswith(e.stable_text), "the stable part is a prefix of the interim"
            assert e.stable_text.startswith(previous), "stable text only grows"
            assert 0.0 <= e.stability <= 1.0
            previous = e.stable_text
        assert final.text.startswith(previous), "the final keeps what was shown as stable"
        stable_seen += bool(previous)
    assert stable_seen >= 2, "long utterances commit words before their final"


async def test_live_streams_share_vad_runs_and_lose_nothing_to_the_wait(scheduler: DecodeScheduler) -> None:
    # Two live channels whose VAD chunks wait up to 20 ms to be scored together (the server's default). One call
    # ends 100 ms after its last word: what the VAD had not scored yet is scored at the end, so its last
    # utterance still gets its final. Finals as the one-at-a-time VAD gives them (the other tests).
    batching = SileroVAD(batch_wait_s=0.02)
    prog = program(tel8k()[:3], gap_s=1.2)
    cut = int((prog.spans[-1][1] + 0.1) * prog.sample_rate)
    a, b = (StreamingRecognizer(8000, batching, scheduler) for _ in range(2))
    events_a, events_b = await asyncio.gather(run(a, prog.pcm, realtime_factor=4), run(b, prog.pcm[:cut], 4))
    refs = [u.ref for _, _, u in prog.spans]
    for events in (events_a, events_b):
        finals = [e for e in events if e.type is SpeechEventType.FINAL]
        assert len(finals) == len(prog.spans), [f.text for f in finals]
        assert wer(refs, [f.text for f in finals]) <= 0.15
    assert batching.batcher is not None and batching.batcher.mean_batch > 1.2  # shared runs
    # All of a call pushed before the loop runs again (so before any wait is over), then ended: every chunk is
    # scored at the end, and every utterance gets its final.
    c, other = StreamingRecognizer(8000, batching, scheduler), batching.new_stream(8000)
    batching.batcher.submit(other, np.zeros(0, dtype=np.float32), lambda chunks: None)  # live, sends nothing
    events: list[SpeechEvent] = []
    consumer = asyncio.create_task(_collect(c, events))
    for offset in range(0, cut, 160):
        c.push(prog.pcm[offset : offset + 160])
    c.end()
    await asyncio.wait_for(consumer, 60)
    assert len([e for e in events if e.type is SpeechEventType.FINAL]) == len(prog.spans)


async def _collect(recognizer: StreamingRecognizer, events: list[SpeechEvent]) -> None:
    async for event in recognizer.events():
        events.append(event)


async def test_time_offset_and_endpointing(vad: SileroVAD, scheduler: DecodeScheduler) -> None:
    utt = tel8k()[5]
    pcm = np.concatenate([np.zeros(8000, dtype=np.int16), utt.pcm, np.zeros(16000, dtype=np.int16)])
    config = StreamingConfig(endpointing_ms=300, interim_results=False, utterance_end_ms=1500)
    events = await run(StreamingRecognizer(8000, vad, scheduler, config, time_offset=100.0), pcm)
    kinds = [SpeechEventType.START_OF_SPEECH, SpeechEventType.FINAL, SpeechEventType.UTTERANCE_END]
    assert [e.type for e in events] == kinds
    assert 100.5 < events[1].words[0].start < 101.5
    assert abs(events[2].end - events[1].words[-1].end) < 0.5, "the utterance end is where speech stopped"
    # Without an utterance-end setting, and with a longer endpointing, only the final comes.
    config = StreamingConfig(endpointing_ms=1200, interim_results=False, utterance_end_ms=0)
    events = await run(StreamingRecognizer(8000, vad, scheduler, config), pcm)
    assert [e.type for e in events] == kinds[:2]


async def test_a_recording_is_decoded_in_whole_exchanges_and_reported_utterance_by_utterance(
    vad: SileroVAD, scheduler: DecodeScheduler
) -> None:
    """A recording (``batch``, fed as fast as it decodes): pauses under ``batch_join_ms`` are decoded with the speech
    around them, up to Whisper's 30 s window (fewer, longer decodes: offline decoding's context), and each final is
    split back at the pauses: one final per utterance, numbered in order, every word in its own utterance's final,
    finals apart in time, no interims. ``batch_join_ms = 0`` decodes each utterance alone, as a live call."""
    prog = program(tel8k(), gap_s=1.0)
    refs = [u.ref for _, _, u in prog.spans]
    decoded: list[float] = []
    decode = scheduler.decode

    async def counted(request: DecodeRequest) -> Hypothesis:
        decoded.append(request.audio.size / 16000)
        return await decode(request)

    scheduler.decode = counted  # type: ignore[method-assign]
    results = {}
    for join in (2000, 0):
        decoded.clear()
        config = StreamingConfig(batch=True, batch_join_ms=join)
        events = await run(StreamingRecognizer(8000, vad, scheduler, config), prog.pcm, realtime_factor=50)
        assert not [e for e in events if e.type is SpeechEventType.INTERIM]
        finals = [e for e in events if e.type is SpeechEventType.FINAL]
        assert len(finals) == len(prog.spans), [f.text for f in finals]
        assert [f.segment for f in finals] == list(range(1, len(finals) + 1))
        for (start, end, _u), final in zip(prog.spans, finals, strict=True):
            assert start - 0.45 <= final.words[0].start and final.words[-1].end <= end + 0.45  # its own words
            assert final.start <= final.words[0].start and final.words[-1].end <= final.end
        assert all(a.end <= b.start for a, b in itertools.pairwise(finals))
        results[join] = (wer(refs, [f.text for f in finals]), len(decoded), max(decoded))
    (joined_wer, joined_decodes, longest), (alone_wer, alone_decodes, _) = results[2000], results[0]
    assert alone_decodes == len(prog.spans) and joined_decodes <= len(prog.spans) / 3
    assert 15 < longest <= 30, "whole exchanges in one window, never over Whisper's 30 s"
    assert joined_wer <= max(0.1, alone_wer + 0.02), results


async def test_state_stays_bounded_on_a_long_call(vad: SileroVAD, scheduler: DecodeScheduler) -> None:
    """Twenty minutes of talk, much faster than real time: audio is dropped after every final."""
    prog = program(tel8k(), gap_s=1.0)
    recognizer = StreamingRecognizer(8000, vad, scheduler, StreamingConfig(interim_results=False))
    finals = 0
    peak = 0

    async def consume() -> None:
        nonlocal finals
        async for event in recognizer.events():
            finals += event.type is SpeechEventType.FINAL

    task = asyncio.create_task(consume())
    rounds = int(1200 / prog.duration) + 1
    for _ in range(rounds):
        for offset in range(0, len(prog.pcm), 8000):
            recognizer.push(prog.pcm[offset : offset + 8000])
            peak = max(peak, recognizer.held_samples)
        await asyncio.sleep(0)
    recognizer.end()
    await asyncio.wait_for(task, 300)
    assert finals >= rounds * len(prog.spans) * 0.9
    assert peak <= 8000 * (recognizer.config.max_utterance_s + 1.5)
    assert len(recognizer._finals_emitted) <= 8


async def test_finalize_ends_the_utterance_now_and_speech_final_marks_pauses(
    vad: SileroVAD, scheduler: DecodeScheduler
) -> None:
    """``finalize()`` mid-utterance gives a final at once (not ``speech_final``); the rest of the speech starts a
    new utterance whose final, ended by a pause, is ``speech_final``."""
    utt = max(tel8k(), key=lambda u: u.duration)
    prog = program([utt], gap_s=1.2, lead_s=0.3)
    recognizer = StreamingRecognizer(8000, vad, scheduler)
    events: list[SpeechEvent] = []

    async def consume() -> None:
        async for event in recognizer.events():
            events.append(event)

    task = asyncio.create_task(consume())
    frame = 160
    cut = int((0.3 + utt.duration / 2) * 8000) // frame * frame
    for offset in range(0, len(prog.pcm), frame):
        if offset == cut:
            recognizer.finalize()
        recognizer.push(prog.pcm[offset : offset + frame])
        await asyncio.sleep(0.0025)
    recognizer.end()
    await asyncio.wait_for(task, 60)

    finals = [e for e in events if e.type is SpeechEventType.FINAL]
    assert len(finals) == 2, [f.text for f in finals]
    assert not finals[0].speech_final and finals[1].speech_final
    assert finals[0].end <= cut / 8000 + 0.05 <= finals[1].words[-1].end
    assert wer([utt.ref], [f.text for f in finals]) <= 0.3, "nothing said is lost across the cut"
    recognizer.finalize()  # after the end: nothing happens


PITCH = (
    "Our platform records every call, transcribes it live, and shows your reps coaching prompts while they talk.",
    "Managers can listen in from the browser, and every call is searchable the moment it ends.",
    "Teams that switched to us from older tools usually see their ramp time drop within the first quarter.",
    "The integration with your CRM takes about a day to set up, and our support team stays with you the whole way.",
    "Pricing starts at forty nine dollars per seat per month, with a discount for annual contracts.",
    "We keep every recording on your own servers, so nothing leaves your network.",
    "Your security team can review our architecture documents before the pilot starts.",
    "Most customers run a two week pilot with ten reps, then roll out to the whole floor.",
    "We also integrate with your dialer, your calendar and your email, so notes are written for you.",
    "At the end of each call the rep gets a summary with next steps and the questions the customer asked.",
)


def monologue() -> tuple[np.ndarray, str]:
    """A minute of one voice with no pause over 50 ms: the sentences of a sales pitch run together."""
    from tests.synth import require_flite, speak

    require_flite()
    parts = []
    for sentence in PITCH:
        pcm, rate = speak(sentence, "rms")
        assert rate == 16000
        voiced = np.nonzero(np.abs(pcm) > 300)[0]
        parts += [pcm[max(0, voiced[0] - 160) : voiced[-1] + 160], np.zeros(800, dtype=np.int16)]
    return np.concatenate([np.zeros(8000, dtype=np.int16), *parts, np.zeros(16000, dtype=np.int16)]), " ".join(PITCH)


async def test_a_long_turn_without_a_pause_loses_no_word_at_its_cuts(
    vad: SileroVAD, scheduler: DecodeScheduler
) -> None:
    """A minute without a pause gets a final at least every ``max_utterance_s``, cut between words, and the
    finals together say what offline decoding of the whole minute says (no word lost or doubled at a cut)."""
    pcm, reference = monologue()
    recognizer = StreamingRecognizer(16000, vad, scheduler)
    peak = 0

    async def feed() -> list[SpeechEvent]:
        nonlocal peak
        events: list[SpeechEvent] = []

        async def consume() -> None:
            async for event in recognizer.events():
                events.append(event)

        task = asyncio.create_task(consume())
        for offset in range(0, len(pcm), 320):
            recognizer.push(pcm[offset : offset + 320])
            peak = max(peak, recognizer.held_samples)
            await asyncio.sleep(0.0025)
        recognizer.end()
        await asyncio.wait_for(task, 120)
        return events

    events = await feed()
    finals = [e for e in events if e.type is SpeechEventType.FINAL]
    assert len(finals) >= 4, [f.text for f in finals]
    for before, after in itertools.pairwise(finals):
        assert after.start - before.start <= 15.0, "a final at least every ~15 s"
        assert before.words[-1].end <= after.words[0].end, "words in order across the cut"
    engine = scheduler.engine
    assert isinstance(engine, WhisperCT2Engine)
    audio = pcm.astype(np.float32) / 32768
    segments, _info = engine.whisper.transcribe(
        audio, beam_size=1, condition_on_previous_text=False, vad_filter=False, language="en"
    )
    offline = " ".join(s.text for s in segments)
    streamed = [f.text for f in finals]
    assert wer([reference], streamed) <= wer([reference], [offline]) + 0.05, (streamed, offline)
    assert peak <= 16000 * (recognizer.config.max_utterance_s + 2.5), "memory stays bounded"


async def test_a_mixed_two_party_call_streams_as_well_as_offline_decoding(
    vad: SileroVAD, scheduler: DecodeScheduler, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Both voices of a scripted sales call in one channel: turns 0.2-0.8 s apart run into each other, so the
    stream is cut at the length limit over and over (this call lost 53 % of its words before). Streamed, it
    comes out within a few words of offline decoding of the same audio, and no final comes out nearly empty."""
    from benchmarks.conversation_scripts import SCRIPTS
    from benchmarks.conversation_wer import Segment, recognise, score
    from benchmarks.conversations import build
    from tests.test_conversations import _require_synthesisers

    _require_synthesisers()
    script = next(s for s in SCRIPTS if s.name == "startup_quick_discovery")
    (call,) = build(tmp_path_factory.mktemp("conversations"), [script])
    mixed = call.channels["mixed"]
    scheduler.interim_max_age_s = float("inf")  # lockstep: each decode is awaited, none is too old
    segments = await recognise(mixed, vad, scheduler, StreamingConfig(), speed=0)
    streamed = score(mixed.words, segments)
    engine = scheduler.engine
    assert isinstance(engine, WhisperCT2Engine)
    audio = resample(mixed.audio.astype(np.float32) / 32768, mixed.sample_rate, 16000)
    pieces, _info = engine.whisper.transcribe(
        audio, beam_size=1, condition_on_previous_text=False, vad_filter=False, language="en"
    )
    offline = score(mixed.words, [Segment(p.start, p.end, p.text) for p in pieces])
    assert streamed.forced_cuts >= 4, "the call is cut at the length limit"
    assert streamed.collapsed_segments == 0, [s.text for s in segments]
    streamed_wer, offline_wer = streamed.errors / streamed.ref, offline.errors / offline.ref
    assert streamed_wer <= offline_wer + 0.06, (streamed_wer, offline_wer, [s.text for s in segments])


def test_a_word_heard_whole_before_a_cut_and_in_part_after_it_is_said_once() -> None:
    """Words a conversation benchmark's cut gave (startup_quick_discovery, customer): the final before the cut at
    56.32 s ended "... our conversion", its continuation began "version from first call ..." (the end of the
    same word, over the same audio). The piece goes; a new word that only looks alike, later, stays."""
    before = (Word("our", 55.68, 55.92, 0.9), Word("conversion", 55.92, 56.32, 0.9))
    after = [Word("version", 56.02, 56.44, 0.9), Word("from", 56.44, 56.78, 0.9), Word("first", 56.78, 57.1, 0.9)]
    assert _carried_head(after, 56.32, before) == 1
    later = [Word("version", 56.5, 56.9, 0.9), Word("two", 56.9, 57.2, 0.9)]  # said after "conversion" ended
    assert _carried_head(later, 56.32, before) == 0
    assert _carried_head([Word("on", 55.95, 56.1, 0.9)], 56.32, before) == 0  # too short to tell


def _sentences(count: int) -> list[str]:
    pool = "we send the notes to every rep after each call so nothing gets lost".split()
    return [" ".join(pool[(i * 5 + k) % len(pool)] for k in range(5)) + f" stop{i % 7}." for i in range(count)]


async def _stream_fake(pcm: np.ndarray, engine: FakeEngine, realtime_factor: float) -> list[SpeechEvent]:
    recognizer = StreamingRecognizer(16000, FakeVAD(), DecodeScheduler(engine))
    return await run(recognizer, pcm, realtime_factor)


@pytest.mark.parametrize("cut_decode_s", [0.0, 1.5])
async def test_a_long_turn_is_cut_where_a_sentence_starts(cut_decode_s: float) -> None:
    """A turn without a pause is cut where the final's decode says a segment (a sentence) starts: every final
    before a cut ends a sentence, the continuation starts the next one, and no word is lost or said twice, also
    when the cut's decode is slow and the turn ends before it is back (no model: tests/fakes.py)."""
    voice = Voice(word_s=0.3, gap_s=0.1)
    engine = FakeEngine(voice, segmented_delay_s=cut_decode_s)
    sentences = _sentences(18 if not cut_decode_s else 7)  # ~43 s: three cuts; ~17 s: one, then the turn ends
    greeting = "hello there stop6."  # a turn of its own before the long one (a pause between them)
    spoken = " ".join([greeting, *sentences])
    turns = [voice.say(greeting, 16000), silence(1.5, 16000), voice.say(" ".join(sentences), 16000)]
    pcm = np.concatenate([silence(0.5, 16000), *turns, silence(1.5, 16000)])
    events = await _stream_fake(pcm, engine, realtime_factor=4.0 if cut_decode_s else 50.0)
    finals = [e for e in events if e.type is SpeechEventType.FINAL]
    assert " ".join(w.word for f in finals for w in f.words) == spoken
    assert " ".join(f.text for f in finals if f.text) == spoken
    assert len(finals) >= (5 if not cut_decode_s else 3)
    for before, after in itertools.pairwise(finals):
        assert after.start - before.start <= 15.0, "a final at least every ~15 s"
        assert before.text.endswith("."), "cut where a sentence starts"
        assert before.words[-1].end <= after.words[0].start
    assert sum(r.segmented for r in engine.requests) == len(finals) - 2, "each cut's final decoded as offline"
    # A continuation is decoded knowing how its turn began: prompted with the last words of the final before the cut
    # (no other utterance is prompted; nor is a continuation asked for before that final is back, as here when the
    # cut's decode is slow and the turn ends first: the last final then is the greeting, another turn).
    prompts = [r.prompt for r in engine.requests if r.prompt]
    assert bool(prompts) is (not cut_decode_s), prompts
    assert all(any(f.text.endswith(prompt) for f in finals[1:-1]) for prompt in prompts), prompts
