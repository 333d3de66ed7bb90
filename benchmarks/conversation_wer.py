"""Word error rate of the streaming recogniser on whole two-party calls, against an offline decode of the same audio.

    .venv/bin/python benchmarks/conversation_wer.py --mode inprocess [--speed 0] [--set max_utterance_s=10 ...]
    .venv/bin/python benchmarks/conversation_wer.py --mode server|upload [--concurrency 4]
        [--calls NAME,...] [--channels rep,customer,mixed] [--no-real-call] [--cache-dir DIR] [--details FILE]

Calls: the scripted sales calls of ``benchmarks/conversations.py`` (8 kHz; rep, customer and the mixed mono of
each; pauses, interruptions, backchannels, one 30-45 s turn without a pause per call, card and phone numbers), and
the real 30 s phone call that pyannote.audio's wheel ships (16 kHz mixed mono, with its STM transcript).

Streaming, two ways (and recordings, a third):

- ``--mode inprocess``: every channel fed straight into ``models.streaming.StreamingRecognizer`` (the server's
  StreamingConfig, VAD and decode scheduler, built from the default Settings as ``media-server serve`` builds them;
  ``--set FIELD=VALUE`` overrides a StreamingConfig field), all channels at once against one scheduler.
  ``--speed 0`` (the default) is lockstep: each stream waits for its own decodes before it gets more audio, so
  results are what an unloaded server gives (no interim is dropped as too old), do not depend on the machine's
  load, and come as fast as the CPU decodes. ``--speed N`` paces the audio at N times real time instead (decodes
  may lag and interims be dropped, as on a loaded server).
- ``--mode server``: a real ``media-server serve`` (temp data dir, fresh admin key, the team's redaction policy
  emptied so that finals keep card numbers), each call streamed in real time over the L16 websocket twice, stereo
  (channel 0 = rep, 1 = customer) and mixed mono, ``--concurrency`` streams at once; finals read from each call's
  events websocket.
- ``--mode upload``: the same server, each call uploaded as a recording (``POST /v1/calls``, WAV: the stereo file,
  then the mixed mono, which the server diarizes), decoded as batch work as fast as it goes; finals read from the
  stored call's transcript. ``--set batch=true`` in ``--mode inprocess`` is the same recogniser in-process.

Offline reference: faster-whisper on the bundled tiny.en (int8; beam_size=1, condition_on_previous_text=False,
vad_filter=False, word_timestamps=True), each channel's whole audio at once; cached per audio hash.

Scoring (both sides through ``normalise``): WER with jiwer; deletions within 1 s of a segment boundary (a
reference word aligned as deleted whose estimated time is within 1 s of the start or end of a streamed final, or
of an offline segment; those next to a final cut by the utterance-length limit are also counted apart); deleted
words inside a final that continues a cut turn; "collapsed" segments (3 s or more whose text has under 30 % of
the reference words spoken in them); and for every card and phone number, whether each of its digits is aligned
as recognised. Numbers are normalised so that
a correctly recognised number scores as correct however Whisper writes it:

- ``$`` amounts and numbers with thousands commas or decimals: a cardinal ("$1,200" -> "one thousand two hundred
  dollars", "$49.50" -> "forty nine dollars fifty cents", "3.5" -> "three point five"); ``%`` -> "percent";
- ordinals ("3rd" -> "third"), and a day after a month name ("March 14" -> "march fourteenth");
- clock times ("3:30" -> "three thirty", "10:00" -> "ten");
- a lone 4-digit number from 1900 to 2099 as a year ("2024" -> "twenty twenty four");
- digit groups joined by spaces, hyphens, dots, parentheses or ", " (card and phone numbers: "4556-7375", "(212)
  555-0134", "4916, 338, 506"), any other group of 4 or more digits, or one with a leading zero: digit by digit
  ("zero", never "oh");
- other numbers (1 to 3 digits) as cardinals, without "and" ("150" -> "one hundred fifty").

Then lower case, hyphens as spaces, punctuation dropped, and a few spellings unified (ok -> okay, alright -> all
right, mr -> mister, mhm -> mm hmm). The references are written in words already (as the synthesiser said them).

In-process, interims are scored too (``scheduler.interims`` in the summary): each interim's words against the words
of its utterance's final that lie in the audio the interim had (by each word's middle), as a WER pooled over all
interims: what a change that makes interims cheaper costs the rep who reads them.

JSON lines go to stdout, one per call and channel, then one summary object (pooled WER per channel kind over the
scripted calls, the targets, setup and wall times); progress and a table to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import jiwer
import numpy as np
from num2words import num2words

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.conversations import (  # noqa: E402
    DEFAULT_CACHE,
    Channel,
    Conversation,
    RefWord,
    build,
    pyannote_sample,
    summary,
)
from media_server.client.wav import Recording  # noqa: E402
from media_server.config import Settings  # noqa: E402
from media_server.services import streaming_config  # noqa: E402
from models.asr.scheduler import DecodeScheduler  # noqa: E402
from models.streaming import SpeechEvent, SpeechEventType, StreamingConfig, StreamingRecognizer  # noqa: E402

BOUNDARY_S = 1.0
CHANNELS = ("rep", "customer", "mixed")
OFFLINE_OPTIONS = {
    "language": "en",
    "beam_size": 1,
    "condition_on_previous_text": False,
    "vad_filter": False,
    "word_timestamps": True,
}
# --set fields the server mode passes on as MEDIA_SERVER_STREAMING__* (factor: config unit -> setting unit)
SERVER_SETTINGS = {
    "endpointing_ms": ("ENDPOINTING_MS", 1),
    "utterance_end_ms": ("UTTERANCE_END_MS", 1),
    "interim_results": ("INTERIM_RESULTS", 1),
    "interim_interval_s": ("INTERIM_INTERVAL_MS", 1000),
    "max_utterance_s": ("MAX_UTTERANCE_S", 1),
    "batch_join_ms": ("BATCH_JOIN_MS", 1),
    "batch_max_utterance_s": ("BATCH_MAX_UTTERANCE_S", 1),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- normalisation ---------------------------------------------------------------------------------------

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
SPELLINGS = {
    "ok": "okay",
    "alright": "all right",
    "mr": "mister",
    "mrs": "missus",
    "dr": "doctor",
    "mhm": "mm hmm",
    "mmhmm": "mm hmm",
    "mmhm": "mm hmm",
    "uhhuh": "uh huh",
}
_CURRENCY = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?(?!\d)")
_DECIMAL = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)\.(\d{1,2})(?![\d])")
_THOUSANDS = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?![\d])")
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_MONTH_DAY = re.compile(rf"\b({MONTHS})\s+(\d{{1,2}})\b")
_PARENS = re.compile(r"\((\d+)\)")
_DIGIT_RUN = re.compile(r"\d+(?:(?:[ .\-]{1,3}|,\s(?=\d\d))\d+)*")


def cardinal(n: int) -> str:
    return _words(num2words(n))


def _words(text: str) -> str:
    return " ".join(w for w in re.split(r"[\s,\-]+", text) if w and w != "and")


def _currency(m: re.Match[str]) -> str:
    dollars = cardinal(int(m.group(1).replace(",", "")))
    cents = f" {cardinal(int(m.group(2).ljust(2, '0')))} cents" if m.group(2) else ""
    return f" {dollars} dollars{cents} "


def _decimal(m: re.Match[str]) -> str:
    fraction = " ".join(DIGIT_WORDS[int(c)] for c in m.group(2))
    return f" {cardinal(int(m.group(1).replace(',', '')))} point {fraction} "


def _clock(m: re.Match[str]) -> str:
    minutes = int(m.group(2))
    spoken = "" if minutes == 0 else (f"oh {cardinal(minutes)}" if minutes < 10 else cardinal(minutes))
    return f" {cardinal(int(m.group(1)))} {spoken} "


def _digit_run(m: re.Match[str]) -> str:
    text = m.group()
    groups = re.split(r"[ .,\-]+", text)
    if len(groups) == 1 and len(text) == 4 and 1900 <= int(text) <= 2099:
        return " " + _words(num2words(int(text), to="year")) + " "
    if len(groups) > 1 or len(text) >= 4 or (text.startswith("0") and len(text) > 1):
        return " " + " ".join(DIGIT_WORDS[int(c)] for c in text if c.isdigit()) + " "
    return " " + cardinal(int(text)) + " "


def normalise(text: str) -> list[str]:
    """The words of ``text`` as they are scored (see the module's docstring for the rules on numbers)."""
    t = text.lower().replace("%", " percent").replace("e-mail", "email")
    t = _CURRENCY.sub(_currency, t)
    t = _DECIMAL.sub(_decimal, t)
    t = _THOUSANDS.sub(lambda m: f" {cardinal(int(m.group().replace(',', '')))} ", t)
    t = _CLOCK.sub(_clock, t)
    t = _ORDINAL.sub(lambda m: " " + _words(num2words(int(m.group(1)), to="ordinal")) + " ", t)
    t = _MONTH_DAY.sub(lambda m: f"{m.group(1)} " + _words(num2words(int(m.group(2)), to="ordinal")), t)
    t = _PARENS.sub(r"\1", t)
    t = _DIGIT_RUN.sub(_digit_run, t)
    t = re.sub(r"[^a-z' ]+", " ", t.replace("-", " "))
    out: list[str] = []
    for word in t.split():
        word = word.strip("'")
        if word:
            out.extend(SPELLINGS.get(word, word).split())
    return out


# -- hypotheses ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One streamed final, or one segment of the offline decode."""

    start: float
    end: float
    text: str
    forced: bool = False  # a final cut by the utterance-length limit (not at a pause)


@dataclass(frozen=True)
class Job:
    call: Conversation
    channel: Channel

    @property
    def key(self) -> tuple[str, str]:
        return self.call.name, self.channel.name


def audio_hash(channel: Channel, extra: Any) -> str:
    h = hashlib.sha256(channel.audio.tobytes())
    h.update(json.dumps([channel.sample_rate, extra], sort_keys=True).encode())
    return h.hexdigest()[:24]


class OfflineDecoder:
    """faster-whisper on the whole audio of a channel, pinned settings, results cached per audio hash."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir / "offline"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._model: Any = None
        self.decoded_s = 0.0  # wall time spent decoding (not cached)

    def segments(self, channel: Channel) -> list[Segment]:
        from models.asr.loader import resolve_model
        from models.audio import int16_to_float32, resample

        path, model_name = resolve_model(None, None)
        cached = self.cache_dir / f"{audio_hash(channel, [model_name, OFFLINE_OPTIONS])}.json"
        if cached.is_file():
            return [Segment(**s) for s in json.loads(cached.read_text())]
        if self._model is None:
            from faster_whisper import WhisperModel

            self._model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)
        t0 = time.monotonic()
        audio = resample(int16_to_float32(channel.audio), channel.sample_rate, 16000)
        found, _info = self._model.transcribe(audio, **OFFLINE_OPTIONS)
        out = [Segment(round(s.start, 3), round(s.end, 3), s.text.strip()) for s in found]
        self.decoded_s += time.monotonic() - t0
        cached.write_text(json.dumps([dataclasses.asdict(s) for s in out]))
        return out


# -- in-process streaming --------------------------------------------------------------------------------


class _StreamScheduler:
    """A stream's view of the shared scheduler that knows when all of the stream's decodes are back."""

    def __init__(self, inner: DecodeScheduler) -> None:
        self.inner = inner
        self.pending = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def stream_opened(self) -> None:
        self.inner.stream_opened()

    def stream_closed(self) -> None:
        self.inner.stream_closed()

    async def decode(self, request: Any) -> Any:
        self.pending += 1
        self._idle.clear()
        try:
            return await self.inner.decode(request)
        finally:
            self.pending -= 1
            if not self.pending:
                self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()


async def recognise(
    channel: Channel,
    vad: Any,
    scheduler: DecodeScheduler,
    config: StreamingConfig,
    speed: float,
    agreement: InterimAgreement | None = None,
) -> list[Segment]:
    """Feed one channel in 20 ms frames; lockstep (``speed`` 0) or paced at ``speed`` x real time."""
    view = _StreamScheduler(scheduler)
    recognizer = StreamingRecognizer(channel.sample_rate, vad, cast(DecodeScheduler, view), config)
    finals: list[Segment] = []
    interims: list[SpeechEvent] = []
    final_events: dict[int, SpeechEvent] = {}

    async def consume() -> None:
        async for event in recognizer.events():
            if event.type is SpeechEventType.FINAL:  # empty ones too: they mark where a cut turn went on
                finals.append(Segment(event.start, event.end, event.text, forced=not event.speech_final))
                final_events[event.segment] = event
            elif event.type is SpeechEventType.INTERIM:
                interims.append(event)

    consumer = asyncio.create_task(consume())
    loop = asyncio.get_running_loop()
    frame = channel.sample_rate // 50
    t0 = loop.time()
    for i, offset in enumerate(range(0, channel.audio.size, frame)):
        recognizer.push(channel.audio[offset : offset + frame])
        if speed > 0:
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.02 / speed - loop.time()))
        else:
            await asyncio.sleep(0)  # let the decode it may have asked for reach the scheduler
            await view.idle()
    recognizer.end()
    await consumer
    if agreement is not None:
        agreement.add(interims, final_events)
    return finals


@dataclass
class InterimAgreement:
    """How far interims stray from their utterance's final: each interim's words against the final's words that
    lie (by their middle) in the audio the interim had, as a WER, pooled. It measures interims (what a rep
    sees while speaking), not finals: a change that makes interims cheaper must not make this worse."""

    interims: int = 0
    errors: int = 0
    words: int = 0

    def add(self, interims: Sequence[SpeechEvent], finals: Mapping[int, SpeechEvent]) -> None:
        for interim in interims:
            final = finals.get(interim.segment)
            if final is None:
                continue
            said = [w.word for w in final.words if (w.start + w.end) / 2 <= interim.end]
            reference, hypothesis = normalise(" ".join(said)), normalise(interim.text)
            self.interims += 1
            self.words += len(reference)
            if reference or hypothesis:
                out = jiwer.process_words(" ".join(reference) or "-", " ".join(hypothesis) or "-")
                self.errors += out.substitutions + out.deletions + out.insertions

    def report(self) -> dict[str, Any]:
        wer = round(self.errors / self.words, 4) if self.words else None
        return {"interims": self.interims, "final_words": self.words, "wer_against_final": wer}


async def run_inprocess(
    jobs: Sequence[Job], config: StreamingConfig, speed: float, concurrency: int
) -> tuple[dict[tuple[str, str], list[Segment]], dict[str, Any]]:
    from threadpoolctl import threadpool_limits

    from media_server.services import build_scheduler
    from models.vad import SileroVAD

    threadpool_limits(1)  # as the server: numpy's BLAS threads would compete with the decode threads
    settings = Settings()
    # Paced, live streams' VAD chunks wait to be scored together as the server's do; lockstep, each at once.
    vad = SileroVAD(batch_wait_s=settings.vad.batch_wait_ms / 1000 if speed > 0 else 0.0)
    scheduler = build_scheduler(settings)
    if speed <= 0:  # lockstep: wall time means nothing, so no interim is too old (the server drops them after 1 s)
        scheduler.interim_max_age_s = float("inf")
    limit = asyncio.Semaphore(concurrency or len(jobs))
    done = 0
    agreement = InterimAgreement()

    async def one(job: Job) -> list[Segment]:
        nonlocal done
        async with limit:
            finals = await recognise(job.channel, vad, scheduler, config, speed, agreement)
        done += 1
        log(f"in-process {done}/{len(jobs)}: {job.call.name} {job.channel.name} ({len(finals)} finals)")
        return finals

    try:
        results = await asyncio.gather(*(one(j) for j in jobs))
        stats = {**dataclasses.asdict(scheduler.stats()), "interims": agreement.report()}
    finally:
        scheduler.close()
    return {j.key: r for j, r in zip(jobs, results, strict=True)}, stats


# -- streaming through a server --------------------------------------------------------------------------


def http_put_json(url: str, token: str, body: Any) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@dataclass
class ServerStream:
    """One call streamed to the server: stereo (rep, customer) or mixed mono."""

    call: Conversation
    names: tuple[str, ...]  # channel names by the stream's channel index
    events: list[dict[str, Any]] = field(default_factory=list)
    status: str | None = None

    @property
    def recording(self) -> Recording:
        return self.call.mono() if self.names == ("mixed",) else self.call.stereo()


async def stream_to_server(stream: ServerStream, url: str, token: str, tag: str) -> None:
    from benchmarks.call_load import CONSENT, CallOutcome, CallPlan, collect_events
    from media_server.client.stream import stream_call

    rec = stream.recording
    call_id = f"CAconv{tag}{stream.call.name.replace('_', '')}{len(stream.names)}"
    outcome = CallOutcome(CallPlan(call_id, rec, {}, 0.0))
    ws_base = "ws" + url[4:]
    subscribed = asyncio.Event()
    timeout = rec.duration + 180
    events_url = f"{ws_base}/v1/calls/{call_id}/events?token={token}&after=0"
    collector = asyncio.create_task(collect_events(events_url, outcome, subscribed, timeout))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(subscribed.wait(), 30)
    speaker = "mixed" if stream.names == ("mixed",) else "customer"
    try:
        async with asyncio.timeout(timeout):
            await stream_call(rec, url, "l16", token, call_id=call_id, metadata=CONSENT, speaker=speaker)
    except (TimeoutError, OSError) as exc:
        log(f"{call_id}: stream failed: {exc!r}")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(collector), 90)
    if not collector.done():
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    stream.events, stream.status = outcome.events, outcome.ended_status


def finals_of(stream: ServerStream) -> dict[tuple[str, str], list[Segment]]:
    out: dict[tuple[str, str], list[Segment]] = {(stream.call.name, n): [] for n in stream.names}
    for event in stream.events:
        t = event.get("transcript") if event.get("type") == "transcript" else None
        if not t or not t.get("isFinal"):
            continue
        index = int(t.get("channel", 0))
        if index < len(stream.names):
            forced = not t.get("speechFinal", False)
            segment = Segment(float(t["start"]), float(t["end"]), t.get("text", ""), forced=forced)
            out[(stream.call.name, stream.names[index])].append(segment)
    return out


async def upload_to_server(stream: ServerStream, url: str, token: str, tag: str) -> None:
    """The call as a recording: ``POST /v1/calls`` with the WAV; its finals are the stored call's transcript."""
    import httpx

    from tests.encoded import encode

    rec = stream.recording
    call_id = f"CAup{tag}{stream.call.name.replace('_', '')}{len(stream.names)}"
    body = encode(list(rec.channels), rec.sample_rate, "wav")
    query = {"call_id": call_id, "rep_id": "bench", "rep_consent": "granted", "customer_consent": "granted"}
    answer = await asyncio.to_thread(
        httpx.post,
        f"{url}/v1/calls",
        params=query,
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "audio/wav"},
        timeout=600,
    )
    if answer.status_code != 201:
        log(f"{call_id}: upload refused: {answer.status_code} {answer.text[:200]}")
        stream.status = f"http {answer.status_code}"
        return
    call = answer.json()
    stream.status = "completed" if call.get("status") in (None, "completed") else str(call.get("status"))
    stream.events = [
        {"type": "transcript", "transcript": {**segment, "isFinal": True, "speechFinal": True}}
        for segment in call.get("transcript", [])
    ]


async def run_server(
    calls: Sequence[Conversation],
    channels: Sequence[str],
    concurrency: int,
    env: dict[str, str],
    upload: bool = False,
) -> tuple[dict[tuple[str, str], list[Segment]], dict[str, Any]]:
    from benchmarks.call_load import free_port, start_server, wait_idle

    streams: list[ServerStream] = []
    for call in calls:
        stereo = tuple(n for n in ("rep", "customer") if n in call.channels and n in channels)
        if stereo:
            streams.append(ServerStream(call, ("rep", "customer")))
        if "mixed" in channels and "mixed" in call.channels:
            streams.append(ServerStream(call, ("mixed",)))
    port = free_port()
    log(f"starting media-server on 127.0.0.1:{port}")
    server, url, token = await asyncio.to_thread(start_server, port, 180.0, env)
    try:
        team = await asyncio.to_thread(http_put_json, f"{url}/v1/team/config", token, {"redaction": []})
        log(f"team {team['team']}: redaction {team['config']['redaction']}")
        tag = f"{os.getpid():x}"
        await warm_up(calls[0], url, token, tag)
        limit = asyncio.Semaphore(concurrency)
        t0 = time.monotonic()

        async def one(stream: ServerStream) -> None:
            async with limit:
                verb = "uploading" if upload else "streaming"
                log(f"{verb} {stream.call.name} {'+'.join(stream.names)} ({stream.recording.duration:.0f} s)")
                await (upload_to_server if upload else stream_to_server)(stream, url, token, tag)
                log(f"done {stream.call.name} {'+'.join(stream.names)}: {stream.status}")

        await asyncio.gather(*(one(s) for s in streams))
        wall = time.monotonic() - t0
        status = await wait_idle(url, token, 60)
        info = {
            "server": {k: status.get(k) for k in ("model", "device", "version")},
            "scheduler": status.get("scheduler", {}),
            "diarization": status.get("diarization", {}),
            "streams": len(streams),
            "not_completed": [f"{s.call.name}:{'+'.join(s.names)}" for s in streams if s.status != "completed"],
            "stream_wall_s": round(wall, 1),
        }
    finally:
        log("stopping the server")
        await asyncio.to_thread(server.stop)
    out: dict[tuple[str, str], list[Segment]] = {}
    for s in streams:
        out.update({k: v for k, v in finals_of(s).items() if k[1] in channels})
    return out, info


async def warm_up(call: Conversation, url: str, token: str, tag: str) -> None:
    """A short unmeasured call first, so that first-use costs do not land on the measured ones."""
    from benchmarks.call_load import CONSENT
    from media_server.client.stream import stream_call

    rec = call.mono()
    short = Recording([rec.channels[0][: rec.sample_rate * 8]], rec.sample_rate)
    log("warm-up call (8 s)")
    with contextlib.suppress(TimeoutError, OSError):
        async with asyncio.timeout(60):
            await stream_call(
                short, url, "l16", token, call_id=f"CAconvwarm{tag}", metadata=CONSENT, speed=2.0, speaker="mixed"
            )


# -- scoring ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefToken:
    word: str
    time: float
    number: str


def ref_tokens(words: Sequence[RefWord]) -> list[RefToken]:
    return [RefToken(token, w.middle, w.number) for w in words for token in normalise(w.word)]


@dataclass
class Scored:
    ref: int
    hyp: int
    substitutions: int
    deletions: int
    insertions: int
    boundary_deletions: int
    boundary_deletions_at_cuts: int
    segments: int
    forced_cuts: int
    deletions_after_cuts: int
    collapsed_segments: int
    numbers: dict[str, tuple[int, int, str]]  # tag -> (digits hit, digits, what was heard there)

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def as_dict(self) -> dict[str, Any]:
        return {
            "wer": round(self.errors / self.ref, 4) if self.ref else None,
            "hyp_words": self.hyp,
            "sub": self.substitutions,
            "del": self.deletions,
            "ins": self.insertions,
            "boundary_deletions": self.boundary_deletions,
            "boundary_deletions_at_cuts": self.boundary_deletions_at_cuts,
            "segments": self.segments,
            "forced_cuts": self.forced_cuts,
            "deletions_after_cuts": self.deletions_after_cuts,
            "collapsed_segments": self.collapsed_segments,
        }


def score(reference: Sequence[RefWord], segments: Sequence[Segment]) -> Scored:
    ref = ref_tokens(reference)
    ordered = sorted(segments, key=lambda s: s.start)  # empty finals included: they count as segments
    hyp = [w for s in ordered for w in normalise(s.text)]
    out = jiwer.process_words(" ".join(t.word for t in ref), " ".join(hyp))
    status = ["delete"] * len(ref)
    heard: list[list[str]] = [[] for _ in ref]
    for chunk in out.alignments[0]:
        for k, i in enumerate(range(chunk.ref_start_idx, chunk.ref_end_idx)):
            status[i] = chunk.type
            j = chunk.hyp_start_idx + k
            if chunk.type in ("equal", "substitute") and j < chunk.hyp_end_idx:
                heard[i].append(hyp[j])
    edges = [(t, s.forced) for s in ordered for t in (s.start, s.end)]
    continuations = [b for a, b in pairwise(ordered) if a.forced and abs(b.start - a.end) < 0.05]
    boundary = at_cuts = after_cuts = 0
    for token, kind in zip(ref, status, strict=True):
        if kind != "delete":
            continue
        near = [forced for t, forced in edges if abs(t - token.time) <= BOUNDARY_S]
        boundary += bool(near)
        at_cuts += any(near)
        after_cuts += any(c.start <= token.time < c.end for c in continuations)
    numbers: dict[str, tuple[int, int, str]] = {}
    for tag in dict.fromkeys(t.number for t in ref if t.number):
        idx = [i for i, t in enumerate(ref) if t.number == tag]
        hit = sum(status[i] == "equal" for i in idx)
        numbers[tag] = (hit, len(idx), " ".join(w for i in idx for w in heard[i]))
    return Scored(
        len(ref),
        len(hyp),
        int(out.substitutions),  # jiwer 4 counts in numpy integers
        int(out.deletions),
        int(out.insertions),
        boundary,
        at_cuts,
        len(ordered),
        sum(s.forced for s in ordered),
        after_cuts,
        sum(collapsed(s, ref) for s in ordered),
        numbers,
    )


def collapsed(segment: Segment, ref: Sequence[RefToken], min_s: float = 3.0, share: float = 0.3) -> bool:
    """A segment of at least ``min_s`` whose text has under ``share`` of the reference words spoken in it."""
    spoken = sum(segment.start <= t.time < segment.end for t in ref)
    return segment.end - segment.start >= min_s and spoken >= 5 and len(normalise(segment.text)) < share * spoken


def _plain(value: Any) -> Any:
    """numpy scalars (jiwer 4 and numpy reductions give them) as plain numbers for JSON."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def row(job: Job, streamed: Scored, offline: Scored) -> dict[str, Any]:
    s, o = streamed.as_dict(), offline.as_dict()
    digits = []
    for tag, (hit, total, heard) in streamed.numbers.items():
        kind, number = tag.split(":")
        off_hit = offline.numbers.get(tag, (0, total, ""))[0]
        digits.append(
            {
                "kind": kind,
                "number": number,
                "streaming": f"{hit}/{total}",
                "offline": f"{off_hit}/{total}",
                "all_digits_streaming": hit == total,
                "streaming_heard": heard,
            }
        )
    gap = round(s["wer"] - o["wer"], 4) if s["wer"] is not None and o["wer"] is not None else None
    return {
        "call": job.call.name,
        "channel": job.channel.name,
        "duration_s": round(job.channel.duration, 1),
        "ref_words": streamed.ref,
        "streaming": s,
        "offline": o,
        "wer_gap": gap,
        "digits": digits,
    }


def pooled(scores: Sequence[Scored]) -> dict[str, Any]:
    ref = sum(s.ref for s in scores)
    return {
        "ref_words": ref,
        "wer": round(sum(s.errors for s in scores) / ref, 4) if ref else None,
        "boundary_deletions": sum(s.boundary_deletions for s in scores),
        "boundary_deletions_at_cuts": sum(s.boundary_deletions_at_cuts for s in scores),
    }


def targets(rows: Sequence[dict[str, Any]], pools: dict[str, dict[str, Any]]) -> dict[str, Any]:
    within = {
        kind: round(p["streaming"]["wer"] - p["offline"]["wer"], 4)
        for kind, p in pools.items()
        if p["streaming"]["wer"] is not None
    }
    worst = max(rows, key=lambda r: r["wer_gap"] if r["wer_gap"] is not None else -1.0)
    boundary = {
        "streaming": sum(r["streaming"]["boundary_deletions"] for r in rows),
        "offline": sum(r["offline"]["boundary_deletions"] for r in rows),
    }
    cards = [(r["call"], r["channel"], d) for r in rows for d in r["digits"] if d["kind"] == "card"]
    missed = [
        f"{c}:{ch}:{d['number']} heard {d['streaming_heard']!r}" for c, ch, d in cards if not d["all_digits_streaming"]
    ]
    met = {
        "pooled_streaming_within_1_point_of_offline": all(v <= 0.01 for v in within.values()),
        "no_call_channel_more_than_3_points_worse": (worst["wer_gap"] or 0.0) <= 0.03,
        "boundary_deletions_not_above_offline": boundary["streaming"] <= boundary["offline"],
        "every_card_digit_present": not missed,
    }
    return {
        "pooled_gap": within,
        "worst_call_channel": {"call": worst["call"], "channel": worst["channel"], "wer_gap": worst["wer_gap"]},
        "boundary_deletions": boundary,
        "cards": f"{len(cards) - len(missed)}/{len(cards)} with every digit",
        "cards_missed": missed,
        "met": met,
        "all_met": all(met.values()),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'call':<26} {'channel':<8} {'words':>5} {'stream':>7} {'offline':>7} {'gap':>6} {'bdel s/o':>8} digits"]
    for r in rows:
        s, o = r["streaming"], r["offline"]
        digits = " ".join(f"{d['kind']}:{d['streaming']}" for d in r["digits"])
        lines.append(
            f"{r['call'][:26]:<26} {r['channel']:<8} {r['ref_words']:>5} {s['wer']:>7.3f} {o['wer']:>7.3f} "
            f"{r['wer_gap']:>+6.3f} {s['boundary_deletions']:>4}/{o['boundary_deletions']:<3} {digits}"
        )
    return "\n".join(lines)


def write_details(
    path: Path,
    jobs: Sequence[Job],
    streamed: dict[tuple[str, str], list[Segment]],
    offline: dict[tuple[str, str], list[Segment]],
) -> None:
    """One JSON line per call and channel: the streamed finals, the offline segments and the reference turns."""
    with path.open("w") as f:
        for job in jobs:
            detail = {
                "call": job.call.name,
                "channel": job.channel.name,
                "finals": [[s.start, s.end, s.forced, s.text] for s in streamed.get(job.key, [])],
                "offline": [[s.start, s.end, s.text] for s in offline[job.key]],
                "reference": [[t.speaker, t.start, t.end, t.text] for t in job.channel.turns],
            }
            f.write(json.dumps(detail, default=_plain) + "\n")


# -- main ------------------------------------------------------------------------------------------------


def source_state() -> dict[str, Any]:
    """The commit, the server's and recogniser's files that differ from it, and a hash of those differences (the
    results depend on them; taken when the run starts, as the modules are imported)."""

    def git(*cmd: str) -> str:
        run = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=30)
        return run.stdout

    dirty = git("status", "--porcelain", "--", "models", "media_server").splitlines()
    diff = hashlib.sha256(git("diff", "HEAD", "--", "models", "media_server").encode()).hexdigest()[:12]
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "modified": [line[3:] for line in dirty],
        "diff_sha256": diff if dirty else None,
    }


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` pairs for StreamingConfig, typed by each field's default."""
    defaults: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(StreamingConfig)}
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in defaults:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE, FIELD one of {', '.join(defaults)}")
        default = defaults[name]
        if isinstance(default, bool):
            out[name] = value.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, tuple):
            out[name] = tuple(v.strip() for v in value.split(",") if v.strip())
        else:
            out[name] = type(default)(value)
    return out


def server_env(overrides: dict[str, Any]) -> dict[str, str]:
    env = {}
    for name, value in overrides.items():
        if name not in SERVER_SETTINGS:
            raise SystemExit(f"--set {name} is not a server setting; --mode server takes {', '.join(SERVER_SETTINGS)}")
        setting, factor = SERVER_SETTINGS[name]
        text = str(value).lower() if isinstance(value, bool) else str(round(value * factor, 6))
        env[f"MEDIA_SERVER_STREAMING__{setting}"] = text
    return env


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=("inprocess", "server", "upload"), default="inprocess")
    p.add_argument("--speed", type=float, default=0.0, help="inprocess: 0 = lockstep (default), N = N x real time")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a StreamingConfig override")
    p.add_argument("--concurrency", type=int, help="streams at once (server: 4 calls; inprocess: every channel)")
    p.add_argument("--calls", help="comma list of call names (default: all)")
    p.add_argument("--channels", default=",".join(CHANNELS), help="comma list of rep, customer, mixed")
    p.add_argument("--no-real-call", action="store_true", help="leave out pyannote.audio's sample call")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--details", type=Path, help="write every channel's finals, offline segments and reference here")
    args = p.parse_args(argv)
    args.channels = [c for c in args.channels.split(",") if c]
    if unknown := set(args.channels) - set(CHANNELS):
        p.error(f"unknown channels {sorted(unknown)}")
    if args.concurrency is None:
        args.concurrency = {"server": 4, "upload": 2}.get(args.mode, 0)
    return args


def select_calls(args: argparse.Namespace) -> list[Conversation]:
    calls = build(args.cache_dir)
    if not args.no_real_call:
        calls.append(pyannote_sample(args.cache_dir))
    if args.calls:
        wanted = set(args.calls.split(","))
        calls = [c for c in calls if c.name in wanted]
        if not calls:
            raise SystemExit(f"no call named {sorted(wanted)}")
    return calls


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = [round(x, 2) for x in os.getloadavg()]  # other work on the machine skews the server mode
    source = source_state()
    overrides = parse_overrides(args.set)
    env = server_env(overrides) if args.mode != "inprocess" else {}
    calls = select_calls(args)
    scripted = [c for c in calls if "rep" in c.channels]
    names = {c.name for c in scripted}
    log(f"{len(calls)} calls; scripted: {json.dumps(summary(scripted)['reference_words'])} reference words")
    jobs = [Job(c, c.channels[n]) for c in calls for n in args.channels if n in c.channels]
    offline = OfflineDecoder(args.cache_dir)
    offline_segments = {}
    for job in jobs:
        offline_segments[job.key] = offline.segments(job.channel)
    log(f"offline decode: {offline.decoded_s:.0f} s (the rest cached)")
    config = dataclasses.replace(streaming_config(Settings()), **overrides)  # what the server would use
    t0, cpu0 = time.monotonic(), time.process_time()
    if args.mode == "inprocess":
        streamed, info = asyncio.run(run_inprocess(jobs, config, args.speed, args.concurrency))
        info = {"scheduler": info}
    else:
        streamed, info = asyncio.run(
            run_server(calls, args.channels, args.concurrency, env, upload=args.mode == "upload")
        )
    wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
    rows, scores = [], []
    for job in jobs:
        reference = job.channel.words
        s, o = score(reference, streamed.get(job.key, [])), score(reference, offline_segments[job.key])
        rows.append(row(job, s, o))
        scores.append((job, s, o))
        print(json.dumps(rows[-1], default=_plain), flush=True)
    pools = {
        kind: {
            "streaming": pooled([s for j, s, _ in scores if j.channel.name == kind and j.call.name in names]),
            "offline": pooled([o for j, _, o in scores if j.channel.name == kind and j.call.name in names]),
        }
        for kind in args.channels
    }
    if args.details:
        write_details(args.details, jobs, streamed, offline_segments)
    report = {
        "summary": True,
        "mode": args.mode,
        "speed": args.speed if args.mode == "inprocess" else 1.0,
        "concurrency": args.concurrency,
        "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()},
        "scripted_calls": summary(scripted),
        "real_calls": {c.name: len(c.channels["mixed"].words) for c in calls if c.name not in names},
        "pooled_over_scripted_calls": pools,
        "targets": targets(rows, pools),
        "wall_s": {"streaming": round(wall, 1), "offline_decode": round(offline.decoded_s, 1)},
        "audio_s": round(sum(j.channel.duration for j in jobs), 1),
        # this process's CPU while streaming (in-process: VAD, decodes, everything; a server's is its own)
        "streaming_cpu_s": round(cpu, 1) if args.mode == "inprocess" else None,
        "source": source,
        "load_average": {"before": load_before, "after": [round(x, 2) for x in os.getloadavg()]},
        **info,
    }
    print(json.dumps(report, default=_plain), flush=True)
    log("\n" + table(rows))
    log(json.dumps({"pooled": pools, "targets": report["targets"]}, indent=1, default=_plain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
