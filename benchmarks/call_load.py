"""How many concurrent calls does the server hold? A load sweep over real-time simulated two-party calls.

Run from the repository root::

    .venv/bin/python benchmarks/call_load.py --calls 1,2,4,6 --duration 45

For each N in ``--calls`` it plays N concurrent stereo calls (left = rep, right = customer, built from the
``tel8k_sim`` utterances in tests/data/speech) through the Twilio ingest protocol at real-time pacing,
subscribes to each call's events websocket (or, with ``--protocol grpc``, streams each call over gRPC ``StreamCall``
and reads its events from the same stream), and measures final-transcript latency, interim lag, WER, and
the server's CPU and memory. With ``--protocol deepgram`` each of the N streams is one speaker (the rep's track,
mono 8 kHz linear16) on the Deepgram-compatible ``/v1/listen``, as a voice agent streams its caller, with
``interim_results=true``; ``--dg-params`` adds query parameters (``diarize=true``, ``speaker=mixed``...).
By default it starts its own server (temp data dir, fresh admin key); with ``--url/--token/--server-pid`` it
measures a running one. One JSON document goes to stdout; progress to stderr.

Final latency: arrival of a final transcript minus the wall time at which the audio at the end of the
reference utterance it overlaps most (same speaker) had been sent. Interim lag: arrival of an interim minus
the wall time at which the audio at its ``end`` had been sent. The load generator runs on the same machine
as the server, so it shares the CPU with it (its own cost is small: JSON + base64 of 2 x 50 frames/s per call).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
import jiwer
import numpy as np
import numpy.typing as npt
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from media_server.client.stream import StreamResult, stream_call  # noqa: E402
from media_server.client.wav import Recording, read_wav  # noqa: E402
from media_server.events import to_dict  # noqa: E402
from media_server.v1 import api_pb2, api_pb2_grpc  # noqa: E402
from media_server.v1 import events_pb2 as pb  # noqa: E402
from tests.speech import normalise  # noqa: E402  (the speech data README's normalisation)

BIN = Path(sys.executable).parent / "media-server"
DEFAULT_SPEECH = ROOT / "tests" / "data" / "speech"  # the suite's speech; else --speech-dir or SPEECH_DATA
SPEAKERS = ("rep", "customer")  # left, right
CONSENT = {"repConsent": "granted", "customerConsent": "granted"}
SAMPLE_RATE = 8000
LATENCY_TARGET_S = 1.5


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- speech material -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Utterance:
    id: str
    ref: str
    pcm: npt.NDArray[np.int16]

    @property
    def duration(self) -> float:
        return len(self.pcm) / SAMPLE_RATE


@dataclass(frozen=True)
class Span:
    start: float  # seconds of call time
    end: float
    utterance: Utterance


@dataclass(frozen=True)
class CallPlan:
    call_id: str
    recording: Recording
    spans: dict[str, list[Span]]  # speaker -> reference utterances on that track, in order
    delay_s: float  # start offset within the run (stagger)


def load_tel8k(speech_dir: Path) -> list[Utterance]:
    manifest = json.loads((speech_dir / "manifest.json").read_text())
    out = []
    for entry in manifest:
        if entry["set"] != "tel8k_sim":
            continue
        rec = read_wav(speech_dir / entry["wav"]).at_rate(SAMPLE_RATE)
        out.append(Utterance(entry["id"], entry["ref"], rec.channels[0]))
    if not out:
        raise RuntimeError(f"no tel8k_sim utterances in {speech_dir / 'manifest.json'}")
    return out


def track(order: Sequence[Utterance], lead_s: float, gap_s: float, min_s: float) -> tuple[list[Span], np.ndarray]:
    """Lay utterances out (cycling through ``order``) until the track lasts at least ``min_s``."""
    parts = [np.zeros(round(lead_s * SAMPLE_RATE), dtype=np.int16)]
    spans: list[Span] = []
    t = lead_s
    gap = np.zeros(round(gap_s * SAMPLE_RATE), dtype=np.int16)
    i = 0
    while t < min_s and i < 10_000:
        u = order[i % len(order)]
        parts.append(u.pcm)
        spans.append(Span(t, t + u.duration, u))
        t += u.duration
        parts.append(gap)
        t += gap_s
        i += 1
    return spans, np.concatenate(parts)


def plan_calls(
    utterances: list[Utterance], n: int, duration_s: float, gap_s: float, stagger_s: float, rng: random.Random, tag: str
) -> list[CallPlan]:
    k = len(utterances)
    rep_base = list(range(k))
    customer_base = rng.sample(rep_base, k)
    while k > 1 and customer_base == rep_base:
        customer_base = rng.sample(rep_base, k)
    tail_s = 2.0  # trailing silence so the last utterance is endpointed before the stop
    plans = []
    for i in range(n):
        rep_order = [utterances[rep_base[(j + i) % k]] for j in range(k)]
        customer_order = [utterances[customer_base[(j + 2 * i + 1) % k]] for j in range(k)]
        rep_spans, rep_pcm = track(rep_order, 0.5, gap_s, duration_s - tail_s)
        customer_spans, customer_pcm = track(customer_order, 0.5 + rng.uniform(0.3, 1.5), gap_s, duration_s - tail_s)
        length = max(len(rep_pcm), len(customer_pcm)) + round(tail_s * SAMPLE_RATE)
        recording = Recording(
            [np.pad(rep_pcm, (0, length - len(rep_pcm))), np.pad(customer_pcm, (0, length - len(customer_pcm)))],
            SAMPLE_RATE,
        )
        call_id = f"CAbench{tag}n{n}c{i}r{rng.randrange(16**8):08x}"
        delay = rng.uniform(0.0, stagger_s) if i else 0.0
        plans.append(CallPlan(call_id, recording, {"rep": rep_spans, "customer": customer_spans}, delay))
    return plans


def one_speaker(plan: CallPlan) -> CallPlan:
    """The call's rep track alone: a mono stream of one voice (what a voice agent streams of its caller)."""
    return CallPlan(
        plan.call_id,
        Recording([plan.recording.channels[0]], SAMPLE_RATE),
        {"rep": plan.spans["rep"], "customer": []},
        plan.delay_s,
    )


# -- scoring ---------------------------------------------------------------------------------------------


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words) of one hypothesis against one reference, both normalised."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    n_ref = len(ref.split())
    if not hyp:
        return n_ref, n_ref
    if not ref:
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, n_ref


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(np.asarray(values, dtype=np.float64), q)), 3)


def best_span(spans: Sequence[Span], start: float, end: float) -> Span | None:
    best, overlap = None, 0.0
    for span in spans:
        o = min(span.end, end) - max(span.start, start)
        if o > overlap:
            best, overlap = span, o
    return best


# -- the measured calls ----------------------------------------------------------------------------------


@dataclass
class CallOutcome:
    plan: CallPlan
    events: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    stream: StreamResult | None = None
    error: str | None = None
    ended_status: str | None = None


async def collect_events(url: str, outcome: CallOutcome, subscribed: asyncio.Event, timeout: float) -> None:
    try:
        async with asyncio.timeout(timeout):
            async with connect(url, max_size=2**22, open_timeout=30) as ws:
                subscribed.set()
                async for raw in ws:
                    now = time.time()
                    event = json.loads(raw)
                    outcome.events.append(event)
                    outcome.arrivals.append(now)
                    kind = event.get("type")
                    if kind == "error":
                        log(f"{outcome.plan.call_id}: error event {event.get('error')}")
                    elif kind == "call_ended":
                        outcome.ended_status = (event.get("callEnded") or {}).get("status", "")
                        return
    except TimeoutError:
        log(f"{outcome.plan.call_id}: events timed out after {timeout:.0f} s")
    except (ConnectionClosed, InvalidHandshake, OSError) as exc:
        log(f"{outcome.plan.call_id}: events websocket failed: {exc!r}")
    finally:
        subscribed.set()


async def run_call(plan: CallPlan, base_url: str, ws_base: str, token: str, t0: float, timeout: float) -> CallOutcome:
    outcome = CallOutcome(plan)
    events_url = f"{ws_base}/v1/calls/{plan.call_id}/events?token={token}&after=0"
    subscribed = asyncio.Event()
    collector = asyncio.create_task(collect_events(events_url, outcome, subscribed, timeout))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), 30)
        await asyncio.sleep(max(0.0, t0 + plan.delay_s - time.monotonic()))
        try:
            async with asyncio.timeout(timeout):
                outcome.stream = await stream_call(
                    plan.recording, base_url, "twilio", token, call_id=plan.call_id, metadata=CONSENT, speed=1.0
                )
        except (TimeoutError, ConnectionClosed, InvalidHandshake, OSError) as exc:
            outcome.error = f"stream failed: {exc!r}"
            log(f"{plan.call_id}: {outcome.error}")
        # call_ended follows the stop; give it (and late finals) a bounded time to arrive
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(collector), 60)
    finally:
        if not collector.done():
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    return outcome


async def run_call_grpc(plan: CallPlan, target: str, token: str, t0: float, timeout: float) -> CallOutcome:
    """The same call over gRPC StreamCall: 20 ms of each channel per step, paced in real time; the events come
    back on the same stream (converted to the websocket's JSON shape, so that they are scored alike)."""
    outcome = CallOutcome(plan)
    rec = plan.recording
    sent = StreamResult(plan.call_id, started=time.time())
    frame = int(SAMPLE_RATE * 0.02)
    start = api_pb2.StreamStart(
        call_id=plan.call_id,
        encoding=api_pb2.LINEAR16,
        sample_rate=SAMPLE_RATE,
        channels=list(SPEAKERS),
        participants=[pb.Participant(role=r, consent=pb.CONSENT_GRANTED) for r in SPEAKERS],
    )

    async def requests() -> Any:
        yield api_pb2.StreamCallRequest(start=start)
        begin = time.monotonic()
        sent.started = time.time()
        for i, offset in enumerate(range(0, len(rec.channels[0]), frame)):
            for channel, pcm in enumerate(rec.channels):
                data = pcm[offset : offset + frame].astype("<i2").tobytes()
                yield api_pb2.StreamCallRequest(audio=api_pb2.AudioChunk(channel=channel, data=data))
            sent.send_times.append(time.time())
            sent.frames_sent += 1
            await asyncio.sleep(max(0.0, begin + (i + 1) * 0.02 - time.monotonic()))
        yield api_pb2.StreamCallRequest(stop=api_pb2.StreamStop())

    await asyncio.sleep(max(0.0, t0 + plan.delay_s - time.monotonic()))
    try:
        async with asyncio.timeout(timeout), grpc.aio.insecure_channel(target) as channel:
            stub = api_pb2_grpc.MediaServerStub(channel)
            async for event in stub.StreamCall(requests(), metadata=(("authorization", f"Bearer {token}"),)):
                outcome.events.append({"type": event.type, **{k: v for k, v in to_dict(event).items() if k != "id"}})
                outcome.arrivals.append(time.time())
                if event.type == "call_ended":
                    outcome.ended_status = event.call_ended.status
    except (TimeoutError, grpc.aio.AioRpcError) as exc:
        outcome.error = f"stream failed: {exc!r}"
        log(f"{plan.call_id}: {outcome.error}")
    outcome.stream = sent
    return outcome


async def run_call_deepgram(
    plan: CallPlan, ws_base: str, token: str, params: str, t0: float, timeout: float
) -> CallOutcome:
    """A mono stream on the Deepgram-compatible ``/v1/listen``: 20 ms linear16 frames paced in real time, then
    CloseStream; its ``Results`` are converted to transcript events of the rep (one speaker) to be scored alike."""
    outcome = CallOutcome(plan)
    pcm = plan.recording.channels[0]
    sent = StreamResult(plan.call_id, started=time.time())
    frame = int(SAMPLE_RATE * 0.02)
    query = f"encoding=linear16&sample_rate={SAMPLE_RATE}&channels=1&interim_results=true&call_id={plan.call_id}"
    url = f"{ws_base}/v1/listen?{query}{'&' + params if params else ''}"

    async def receive(ws: Any) -> None:
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") != "Results":
                continue
            alternative = message["channel"]["alternatives"][0]
            start = float(message["start"])
            transcript = {
                "speaker": "rep",
                "start": start,
                "end": start + float(message["duration"]),
                "isFinal": bool(message["is_final"]),
                "text": alternative["transcript"],
            }
            outcome.events.append({"type": "transcript", "transcript": transcript})
            outcome.arrivals.append(time.time())

    await asyncio.sleep(max(0.0, t0 + plan.delay_s - time.monotonic()))
    try:
        async with asyncio.timeout(timeout):
            headers = {"Authorization": f"Token {token}"}
            async with connect(url, additional_headers=headers, max_size=2**22, open_timeout=30) as ws:
                reader = asyncio.create_task(receive(ws))
                begin = time.monotonic()
                sent.started = time.time()
                for i, offset in enumerate(range(0, len(pcm), frame)):
                    await ws.send(pcm[offset : offset + frame].astype("<i2").tobytes())
                    sent.send_times.append(time.time())
                    sent.frames_sent += 1
                    await asyncio.sleep(max(0.0, begin + (i + 1) * 0.02 - time.monotonic()))
                await ws.send(json.dumps({"type": "CloseStream"}))
                with contextlib.suppress(ConnectionClosed):
                    await reader  # the last finals and Metadata, then the server closes
                outcome.ended_status = "completed" if ws.close_code == 1000 else f"closed {ws.close_code}"
    except (TimeoutError, ConnectionClosed, InvalidHandshake, OSError) as exc:
        outcome.error = f"stream failed: {exc!r}"
        log(f"{plan.call_id}: {outcome.error}")
    outcome.stream = sent
    return outcome


def score(outcomes: Sequence[CallOutcome]) -> dict[str, Any]:
    latencies: list[float] = []
    lags: list[float] = []
    errors = ref_words = finals = missing = split = interims = 0
    pacing_lag: list[float] = []
    for outcome in outcomes:
        stream = outcome.stream
        if stream is not None and stream.send_times:
            pacing_lag.extend(t - (stream.started + i * 0.02) for i, t in enumerate(stream.send_times))
        matched: dict[int, int] = {}  # id(span) -> finals matched
        hyps: dict[str, list[tuple[float, str]]] = {s: [] for s in SPEAKERS}
        for event, arrival in zip(outcome.events, outcome.arrivals, strict=True):
            if event.get("type") != "transcript":
                continue
            t = event["transcript"]
            speaker = t.get("speaker", "")
            start, end = float(t.get("start", 0.0)), float(t.get("end", 0.0))
            if not t.get("isFinal"):
                interims += 1
                if stream is not None:
                    lags.append(arrival - stream.sent_at(end))
                continue
            if not t.get("text", "").strip():
                continue
            finals += 1
            if speaker in hyps:
                hyps[speaker].append((start, t["text"]))
            span = best_span(outcome.plan.spans.get(speaker, []), start, end)
            if span is None:
                continue
            matched[id(span)] = matched.get(id(span), 0) + 1
            if stream is not None:
                latencies.append(arrival - stream.sent_at(span.end))
        for speaker in SPEAKERS:
            spans = outcome.plan.spans[speaker]
            missing += sum(1 for s in spans if id(s) not in matched)
            split += sum(1 for s in spans if matched.get(id(s), 0) > 1)
            reference = " ".join(s.utterance.ref for s in spans)
            hypothesis = " ".join(text for _, text in sorted(hyps[speaker]))
            e, w = word_errors(reference, hypothesis)
            errors += e
            ref_words += w
    return {
        "final_latency_p50": percentile(latencies, 50),
        "final_latency_p95": percentile(latencies, 95),
        "final_latency_max": round(max(latencies), 3) if latencies else None,
        "interim_lag_p50": percentile(lags, 50),
        "interim_lag_p95": percentile(lags, 95),
        "interims": interims,
        "wer": round(errors / ref_words, 4) if ref_words else None,
        "finals": finals,
        "missing_finals": missing,
        "utterances_split": split,
        "client_pacing_lag_p99": percentile(pacing_lag, 99),
    }


# -- server resources ------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_usage(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS bytes) of ``pid`` and its children."""
    cpu = rss = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            cpu += times.user + times.system
            rss += p.memory_info().rss
    return cpu, rss


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle (all cores)."""
    t = psutil.cpu_times()
    return float(t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


async def wait_quiet(pid: int, limit_s: float, threshold: float = 20.0) -> float:
    """Wait (at most ``limit_s``) until processes other than the server use under ``threshold`` % CPU over 2 s.

    Other work on the machine (a test run, a build) competes with the server for the cores and skews every
    number; returns the last measured foreign load.
    """
    deadline = time.monotonic() + limit_s
    other = 0.0
    warned = False
    while True:
        t0, m0, (s0, _) = time.monotonic(), machine_busy_seconds(), tree_usage(pid)
        me0 = sum(psutil.Process().cpu_times()[:2])
        await asyncio.sleep(2.0)
        span = time.monotonic() - t0
        me1 = sum(psutil.Process().cpu_times()[:2])
        other = 100.0 * ((machine_busy_seconds() - m0) - (tree_usage(pid)[0] - s0) - (me1 - me0)) / span
        if other < threshold or time.monotonic() > deadline:
            return round(max(0.0, other), 1)
        if not warned:
            log(f"other processes use {other:.0f} % CPU; waiting up to {limit_s:.0f} s for a quiet machine")
            warned = True


class Sampler:
    """Samples the server's CPU time and RSS (and the machine's, and this process's) every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.me = psutil.Process()
        # (monotonic, server CPU s, server RSS bytes, machine busy CPU s, own CPU s)
        self.samples: list[tuple[float, float, float, float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        cpu, rss = tree_usage(self.pid)
        own = self.me.cpu_times()
        self.samples.append((time.monotonic(), cpu, rss, machine_busy_seconds(), own.user + own.system))

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self.sample()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def summary(self) -> dict[str, float | None]:
        if len(self.samples) < 2 or self.samples[-1][0] <= self.samples[0][0]:
            return {"cpu_percent": None, "rss_mb": None, "client_cpu_percent": None, "other_cpu_percent": None}
        first, last = self.samples[0], self.samples[-1]
        span = last[0] - first[0]
        server = 100.0 * (last[1] - first[1]) / span
        machine = 100.0 * (last[3] - first[3]) / span
        client = 100.0 * (last[4] - first[4]) / span
        return {
            "cpu_percent": round(server, 1),
            "rss_mb": round(max(x[2] for x in self.samples) / 2**20, 1),
            "client_cpu_percent": round(client, 1),  # this load generator
            "other_cpu_percent": round(max(0.0, machine - server - client), 1),  # anything else on the machine
        }


# -- server ----------------------------------------------------------------------------------------------


def http_json(url: str, token: str | None = None, timeout: float = 10) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def start_redis() -> tuple[subprocess.Popen[bytes], str]:
    """A ``redis-server`` of the benchmark's own on a free port, keeping nothing on disk: the process and its URL."""
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tempfile.mkdtemp(prefix="bench_redis_"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OwnServer:
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    grpc_port: int = 0

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.data_dir, ignore_errors=True)


def start_server(
    port: int, startup_timeout: float, env_overrides: Mapping[str, str | None] | None = None
) -> tuple[OwnServer, str, str]:
    """Start ``media-server serve`` (temp data dir, fresh admin key) and wait until it is healthy.

    ``env_overrides`` sets (a string) or removes (``None``) environment variables of the server, e.g.
    ``{"MEDIA_SERVER_ASR__MAX_BATCH": "1"}``.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="call_load_"))
    env = {
        **os.environ,
        "MEDIA_SERVER_LOG_LEVEL": os.environ.get("MEDIA_SERVER_LOG_LEVEL", "info"),
        "MEDIA_SERVER_GRPC__PORT": os.environ.get("MEDIA_SERVER_GRPC__PORT") or str(free_port()),
    }
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    created = subprocess.run(
        [str(BIN), "keys", "create", "--team", "bench", "--role", "admin", "--data-dir", str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    token = created.stdout.strip().splitlines()[-1]
    log_path = data_dir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    server = OwnServer(process, data_dir, log_path, int(env.get("MEDIA_SERVER_GRPC__PORT", "50051")))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server exited early (rc {process.returncode}):\n{server.log_tail()}")
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                if http_json(f"{url}/health", timeout=1).get("status") == "ok":
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy after {startup_timeout:.0f} s:\n{server.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
    return server, url, token


async def wait_idle(url: str, token: str, timeout: float = 60) -> dict[str, Any]:
    """Wait (bounded) until no call of the team is live and the decode queue is empty."""
    deadline = time.monotonic() + timeout
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            status = await asyncio.to_thread(http_json, f"{url}/v1/status", token)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log(f"status failed: {exc!r}")
        else:
            if status.get("liveCalls", 0) == 0 and status.get("scheduler", {}).get("queueDepth", 0) == 0:
                return status
        await asyncio.sleep(0.5)
    log(f"server not idle after {timeout:.0f} s: {status}")
    return status


# -- the sweep -------------------------------------------------------------------------------------------


async def measure(
    n: int,
    utterances: list[Utterance],
    args: argparse.Namespace,
    url: str,
    token: str,
    pid: int,
    rng: random.Random,
    tag: str,
) -> dict[str, Any]:
    plans = plan_calls(utterances, n, args.duration, args.gap, args.stagger, rng, tag)
    longest = max(p.recording.duration + p.delay_s for p in plans)
    log(f"N={n}: {n} call(s) of {min(p.recording.duration for p in plans):.1f}-{longest:.1f} s")
    ws_base = "ws" + url[4:]
    call_timeout = longest + 120
    before = (await wait_idle(url, token, 60)).get("scheduler", {})
    other_before = await wait_quiet(pid, args.wait_quiet) if args.wait_quiet > 0 else None
    sampler = Sampler(pid, 0.5)
    sampler.start()
    t0 = time.monotonic() + 0.5
    try:
        async with asyncio.timeout(call_timeout + 90):
            if args.protocol == "grpc":
                runs = [run_call_grpc(p, args.grpc_target, token, t0, call_timeout) for p in plans]
            elif args.protocol == "deepgram":
                plans = [one_speaker(p) for p in plans]
                runs = [run_call_deepgram(p, ws_base, token, args.dg_params, t0, call_timeout) for p in plans]
            else:
                runs = [run_call(p, url, ws_base, token, t0, call_timeout) for p in plans]
            outcomes = await asyncio.gather(*runs)
    finally:
        await sampler.stop()
    elapsed = time.monotonic() - t0
    result: dict[str, Any] = {"calls": n, **score(outcomes), **sampler.summary()}
    result["calls_completed"] = sum(1 for o in outcomes if o.ended_status == "completed")
    result["stream_errors"] = sum(1 for o in outcomes if o.error)
    result["wall_s"] = round(elapsed, 1)
    result["other_cpu_percent_before"] = other_before
    status = await wait_idle(url, token, 60)
    result["scheduler"] = status.get("scheduler", {})
    result["scheduler_delta"] = {
        k: result["scheduler"][k] - before.get(k, 0)
        for k in ("batches", "requests", "finals", "interims", "interimsDropped")
        if isinstance(result["scheduler"].get(k), int)
    }
    delta = result["scheduler_delta"]
    result["mean_batch_size"] = round(delta["requests"] / delta["batches"], 2) if delta.get("batches") else None
    if (result["other_cpu_percent"] or 0.0) > 25.0:
        log(f"N={n}: WARNING other processes used {result['other_cpu_percent']} % CPU during the run: results skewed")
    if args.details:
        dump_details(Path(args.details), n, outcomes)
    log(
        f"N={n}: final p50 {result['final_latency_p50']} s p95 {result['final_latency_p95']} s, "
        f"interim lag p50 {result['interim_lag_p50']} s, WER {result['wer']}, finals {result['finals']} "
        f"(missing {result['missing_finals']}), CPU {result['cpu_percent']} %, RSS {result['rss_mb']} MB, "
        f"other load {result['other_cpu_percent']} %"
    )
    return result


def dump_details(path: Path, n: int, outcomes: Sequence[CallOutcome]) -> None:
    """Append every call's references, events and arrival times (one JSON line per call) to ``path``."""
    with path.open("a") as f:
        for o in outcomes:
            stream = o.stream
            row = {
                "calls": n,
                "call_id": o.plan.call_id,
                "delay_s": o.plan.delay_s,
                "started": stream.started if stream else None,
                "spans": {k: [[s.start, s.end, s.utterance.ref] for s in v] for k, v in o.plan.spans.items()},
                "events": [
                    {**e, "arrival": a, "sentAtEnd": stream.sent_at(float(e["transcript"]["end"])) if stream else None}
                    if e.get("type") == "transcript"
                    else {**e, "arrival": a}
                    for e, a in zip(o.events, o.arrivals, strict=True)
                ],
            }
            f.write(json.dumps(row) + "\n")


async def warm_up(utterances: list[Utterance], url: str, token: str) -> None:
    """One short call so that first-use costs (model warm-up, lazy imports) do not land on N=1."""
    _, pcm = track(utterances[:2], 0.3, 0.8, 6.0)
    pcm = np.concatenate([pcm, np.zeros(SAMPLE_RATE, dtype=np.int16)])
    rec = Recording([pcm, pcm.copy()], SAMPLE_RATE)
    log(f"warm-up call ({rec.duration:.1f} s)")
    try:
        async with asyncio.timeout(rec.duration + 60):
            await stream_call(rec, url, "twilio", token, call_id=f"CAbenchwarmup{os.getpid()}", metadata=CONSENT)
    except (TimeoutError, ConnectionClosed, InvalidHandshake, OSError) as exc:
        log(f"warm-up failed: {exc!r}")
    await wait_idle(url, token, 60)


def max_calls_under(results: Sequence[dict[str, Any]], target: float) -> int | None:
    """Largest N whose p95 final latency (and that of every smaller N measured) is under ``target``."""
    best = None
    for r in sorted(results, key=lambda r: r["calls"]):
        p95 = r.get("final_latency_p95")
        if p95 is None or p95 >= target:
            break
        best = r["calls"]
    return best


def machine_info() -> dict[str, Any]:
    freq = psutil.cpu_freq()
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "cpu_mhz": round(freq.current) if freq else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


async def sweep(args: argparse.Namespace, url: str, token: str, pid: int) -> dict[str, Any]:
    utterances = load_tel8k(Path(args.speech_dir))
    log(f"{len(utterances)} tel8k_sim utterances, {sum(u.duration for u in utterances):.1f} s")
    rng = random.Random(args.seed)
    tag = f"{os.getpid():x}{int(time.time()) % 100000:05d}"
    status = await asyncio.to_thread(http_json, f"{url}/v1/status", token)
    log(f"server: model {status.get('model')} on {status.get('device')}")
    if not args.no_warmup:
        await warm_up(utterances, url, token)
    results = []
    for n in args.calls:
        results.append(await measure(n, utterances, args, url, token, pid, rng, tag))
        await asyncio.sleep(args.pause)
    return {
        "machine": machine_info(),
        "server": {"model": status.get("model"), "device": status.get("device"), "version": status.get("version")},
        "config": {
            "protocol": args.protocol,
            "dg_params": args.dg_params if args.protocol == "deepgram" else None,
            "duration_s": args.duration,
            "gap_s": args.gap,
            "stagger_s": args.stagger,
            "seed": args.seed,
        },
        "results": results,
        "max_calls_p95_under_1_5s": max_calls_under(results, LATENCY_TARGET_S),
    }


def parse_calls(text: str) -> list[int]:
    try:
        calls = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--calls wants a comma list of integers, got {text!r}") from exc
    if not calls or any(n < 1 for n in calls):
        raise argparse.ArgumentTypeError("--calls wants positive integers")
    return calls


def build_parser(description: str | None = __doc__, running_server: bool = True) -> argparse.ArgumentParser:
    """The sweep's options; ``running_server=False`` leaves out --url/--token/--server-pid (always own server)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=parse_calls, default=[1, 2, 4, 6], help="comma list of concurrent call counts")
    p.add_argument("--duration", type=float, default=45.0, help="approximate length of each call, seconds (35-60)")
    p.add_argument("--gap", type=float, default=1.2, help="silence between utterances on a track, seconds")
    p.add_argument("--stagger", type=float, default=2.0, help="call starts are spread randomly over this many s")
    p.add_argument("--pause", type=float, default=3.0, help="pause between call counts, seconds")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=180.0,
        help="before each N, wait up to this many s for other processes to stop using the CPU (0: don't)",
    )
    p.add_argument("--speech-dir", default=os.environ.get("SPEECH_DATA", str(DEFAULT_SPEECH)))
    p.add_argument("--details", help="append per-call events and references (JSON lines) to this file")
    p.add_argument(
        "--protocol",
        choices=("twilio", "grpc", "deepgram"),
        default="twilio",
        help="twilio websocket + events, gRPC StreamCall, or one-speaker mono streams on Deepgram's /v1/listen",
    )
    p.add_argument("--dg-params", default="", help="extra /v1/listen query parameters (--protocol deepgram)")
    p.add_argument("--grpc-target", help="HOST:PORT of a running server's gRPC API (with --url and --protocol grpc)")
    p.add_argument("--no-warmup", action="store_true", help="skip the unmeasured warm-up call")
    if running_server:
        p.add_argument("--url", help="use a running server at this http://127.0.0.1:PORT URL instead of starting one")
        p.add_argument("--token", help="admin (or ingest+read) API key of the running server (with --url)")
        p.add_argument("--server-pid", type=int, help="pid of the running server, for CPU and memory (with --url)")
    p.add_argument("--port", type=int, default=0, help="port for the server this script starts (0: a free one)")
    p.add_argument("--startup-timeout", type=float, default=120.0)
    return p


def check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if getattr(args, "url", None) and not (args.token and args.server_pid):
        p.error("--url needs --token and --server-pid")
    if getattr(args, "url", None) and args.protocol == "grpc" and not args.grpc_target:
        p.error("--url with --protocol grpc needs --grpc-target")
    if not 5 <= args.duration <= 600:
        p.error("--duration must be between 5 and 600 seconds")
    return args


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    return check_args(p, p.parse_args(argv))


def sweep_budget(args: argparse.Namespace) -> float:
    """Upper bound on the wall time of one ``sweep`` (warm-up, every N, the waits between)."""
    return float(len(args.calls) * (args.duration + args.stagger + 300) + 300)


@contextlib.contextmanager
def baseline_tree(revision: str) -> Iterator[dict[str, str | None]]:
    """The server environment of another commit: a temporary ``git worktree`` of ``revision`` put first on
    PYTHONPATH (the same virtual environment runs it); removed afterwards."""
    worktree = Path(tempfile.mkdtemp(prefix="baseline_"))
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(worktree), revision], cwd=ROOT, check=True, capture_output=True
    )
    try:
        yield {"PYTHONPATH": str(worktree)}
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, check=False, capture_output=True
        )


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks stop the server."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    server: OwnServer | None = None
    with terminate_as_interrupt():
        try:
            if args.url:
                url, token, pid = args.url.rstrip("/"), args.token, args.server_pid
            else:
                port = args.port or free_port()
                log(f"starting media-server on 127.0.0.1:{port}")
                server, url, token = start_server(port, args.startup_timeout)
                pid = server.process.pid
                args.grpc_target = f"127.0.0.1:{server.grpc_port}"
            report = asyncio.run(asyncio.wait_for(sweep(args, url, token, pid), sweep_budget(args)))
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        except Exception as exc:
            log(f"failed: {exc!r}")
            if server is not None:
                log(f"server log (tail):\n{server.log_tail()}")
            return 1
        finally:
            if server is not None:
                log("stopping the server")
                server.stop()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
