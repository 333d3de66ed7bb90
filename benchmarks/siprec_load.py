"""How many concurrent SIPREC recording sessions does the server hold? A load sweep with sipp as the SRC.

Run from the repository root (as root: sipp's ``play_pcap_audio`` sends RTP through a raw socket)::

    .venv/bin/python benchmarks/siprec_load.py --calls 4,8,16 --duration 30

It starts its own server once (temp data dir, fresh admin key of team "bench") with the SIPREC recording
server enabled on a free port (that team, consent granted, the rep recognised by its AOR domain, a wide RTP
port range). For each N in ``--calls`` it builds N two-party calls from the ``tel8k_sim`` utterances of the
speech in tests/data/speech (benchmarks/call_load.py's ``plan_calls``: a different utterance order per call and
speaker), writes one two-stream G.711 pcap per call (stream 1 = rep on m-line 1, stream 2 = customer on
m-line 2: tests/sipp.py ``write_siprec_media``), subscribes to the team's event websocket
(``/v1/events``), then starts N sipp processes at once (tests/sipp.py ``run_sipp`` with
tests/sipp/siprec_call.xml and ``-m 1``, each with its own pcap, ports and Call-ID): INVITE, 200, ACK, the
pcap at real-time pacing, BYE. One JSON document goes to stdout; progress to stderr.

Measured per N (over every call, as in call_load.py):

- Final latency: arrival of a final transcript minus the wall time at which the end of the reference
  utterance it overlaps most (same speaker) had been sent. Interim lag: arrival of an interim minus the
  wall time at which the audio at its ``end`` had been sent.
- "Sent" times count from the start of the pcap. sipp starts playing it in the action right after it sends
  the ACK, so pcap time 0 is taken as the ACK's timestamp in sipp's message log (``-trace_msg``, wall
  clock, microseconds), which is within a millisecond of the 200 OK's arrival. Where that log lacks the
  ACK, the arrival of the call's ``call_started`` event is used instead: the server publishes it just
  before it sends the 200 OK, so that reference is off by the event's delivery time (a few ms when idle,
  more under load: ``start_ref_error_ms`` reports call_started arrival minus ACK time for every call).
  Error left: the start of sipp's pcap thread after the ACK and its pacing (not observed; sub-ms when the
  machine has CPU to spare, more when sipp competes with the server for the cores), and loopback delivery.
- Transcript times are call times: call time 0 is the server's receipt of the INVITE, and the first RTP
  packet is placed at its arrival, so call time = pcap time + (ACK sent - INVITE sent); transcripts are
  mapped onto pcap time with that per-call offset before they are matched to reference utterances.
- WER of the finals against the references, per speaker and overall (normalised as the speech data's
  README says); finals matched to no reference utterance, utterances with no final, split utterances.
- Setup time (INVITE sent to 200 received) from sipp's response-time statistic (``rtd`` on the 200,
  written per call by ``-trace_rtt``; millisecond resolution).
- Server CPU % and peak RSS of its process tree; the load generator's CPU (this process and its sipp
  processes) and any other load on the machine; calls completed (``call_ended`` with status completed),
  calls stored (``GET /v1/calls/{id}`` completed with a transcript), and the ``/v1/status`` scheduler
  statistics with their change over the run.

The load generator (N sipp processes, each with a pcap-playing thread, plus this process) runs on the same
machine as the server and shares its cores; ``--wait-quiet`` waits for other work to stop first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
import urllib.error
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.call_load import (  # noqa: E402
    LATENCY_TARGET_S,
    SAMPLE_RATE,
    SPEAKERS,
    CallPlan,
    OwnServer,
    Sampler,
    Utterance,
    best_span,
    build_parser,
    check_args,
    free_port,
    http_json,
    load_tel8k,
    log,
    machine_busy_seconds,
    machine_info,
    max_calls_under,
    percentile,
    plan_calls,
    start_server,
    sweep_budget,
    terminate_as_interrupt,
    track,
    tree_usage,
    wait_idle,
    wait_quiet,
    word_errors,
)
from tests.sipp import (  # noqa: E402
    PAUSE_MARGIN_MS,
    SippResult,
    free_udp_port,
    run_sipp,
    siprec_variables,
    write_siprec_media,
)

SCENARIO = "siprec_call.xml"
TEAM = "bench"  # the team of call_load.start_server's admin key
REP_DOMAIN = "acme.example"
FRAME_S = 0.02


# -- one SIPREC session ------------------------------------------------------------------------------------


@dataclass
class SessionOutcome:
    plan: CallPlan
    cid_prefix: str  # sipp's Call-ID is "<cid_prefix>-1@127.0.0.1" (-cid_str)
    workdir: Path
    call_id: str | None = None  # the server's call id (from call_started)
    events: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    started_arrival: float | None = None  # time.time() at which call_started arrived
    ended_status: str | None = None
    ended_reason: str | None = None
    sipp: SippResult | None = None
    error: str | None = None
    invite_sent: float | None = None  # wall times from sipp's message log
    ok_received: float | None = None
    ack_sent: float | None = None
    setup_ms: float | None = None  # sipp's response time (rtd 1: INVITE -> 200), -trace_rtt
    stored: bool = False

    @property
    def start_ref(self) -> float | None:
        """Wall time of pcap time 0: the ACK (sipp plays the pcap right after it), else call_started."""
        return self.ack_sent if self.ack_sent is not None else self.started_arrival

    @property
    def call_time_offset(self) -> float:
        """Call time minus pcap time: the server's call time 0 is its receipt of the INVITE."""
        if self.ack_sent is not None and self.invite_sent is not None:
            return max(0.0, self.ack_sent - self.invite_sent)
        return (self.setup_ms or 0.0) / 1000.0

    def sent_at(self, call_time: float) -> float | None:
        ref = self.start_ref
        return None if ref is None else ref + max(0.0, call_time - self.call_time_offset)


class TeamEvents:
    """The team's event websocket, routing each event to the session it belongs to (by SIP Call-ID)."""

    def __init__(self, url: str, outcomes: Sequence[SessionOutcome]) -> None:
        self.url = url
        self.by_prefix = {o.cid_prefix: o for o in outcomes}
        self.by_call: dict[str, SessionOutcome] = {}
        self.subscribed = asyncio.Event()
        self.all_ended = asyncio.Event()
        self.error: str | None = None
        self.closed_early = False

    def _route(self, event: dict[str, Any], arrival: float) -> None:
        kind = event.get("type")
        call_id = event.get("callId", "")
        outcome = self.by_call.get(call_id)
        if outcome is None and kind == "call_started":
            sip_call_id = str(((event.get("callStarted") or {}).get("metadata") or {}).get("sipCallId", ""))
            outcome = self.by_prefix.get(sip_call_id.rsplit("-", 1)[0])
            if outcome is None:
                return  # another call of the team (the warm-up)
            outcome.call_id = call_id
            outcome.started_arrival = arrival
            self.by_call[call_id] = outcome
        if outcome is None:
            return
        outcome.events.append(event)
        outcome.arrivals.append(arrival)
        if kind == "error":
            log(f"{outcome.cid_prefix}: error event {event.get('error')}")
        elif kind == "call_ended":
            ended = event.get("callEnded") or {}
            outcome.ended_status, outcome.ended_reason = ended.get("status", ""), ended.get("reason", "")
            if all(o.ended_status is not None for o in self.by_prefix.values()):
                self.all_ended.set()

    async def run(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                async with connect(self.url, max_size=2**22, open_timeout=30) as ws:
                    self.subscribed.set()
                    async for raw in ws:
                        self._route(json.loads(raw), time.time())
                        if self.all_ended.is_set():
                            return
                    self.closed_early = True
                    self.error = f"events websocket closed: {ws.close_code} {ws.close_reason}"
                    log(self.error)
        except TimeoutError:
            self.error = f"events timed out after {timeout:.0f} s"
            log(self.error)
        except (ConnectionClosed, InvalidHandshake, OSError) as exc:
            self.error = f"events websocket failed: {exc!r}"
            log(self.error)
        finally:
            self.subscribed.set()


def sipp_variables(plan: CallPlan, index: int, media_duration_s: float) -> dict[str, str]:
    frames = math.ceil(round(media_duration_s * SAMPLE_RATE) / (SAMPLE_RATE * FRAME_S))
    return {
        # the pause while the pcap plays (run_sipp would read the pcap to work it out: slow for N at once)
        "siprec_ms": str(round(frames * FRAME_S * 1000) + PAUSE_MARGIN_MS),
        **siprec_variables(
            rep_name=f"Rep {index}",
            rep_aor=f"sip:rep{index}@{REP_DOMAIN}",
            customer_name=f"Customer {index}",
            customer_aor=f"sip:+1555000{index:04d}@pstn.example",
        ),
    }


async def run_session(
    outcome: SessionOutcome, target: str, variables: dict[str, str], files: dict[str, Path], timeout_s: float
) -> None:
    if outcome.plan.delay_s > 0:
        await asyncio.sleep(outcome.plan.delay_s)
    try:
        outcome.sipp = await run_sipp(
            SCENARIO,
            target,
            workdir=outcome.workdir,
            variables=variables,
            files=files,
            timeout_s=timeout_s,
            extra_args=("-trace_rtt", "-rtt_freq", "1", "-cid_str", f"{outcome.cid_prefix}-%u@%s"),
        )
    except (OSError, ValueError, RuntimeError) as exc:
        outcome.error = f"sipp failed to run: {exc!r}"
        log(f"{outcome.cid_prefix}: {outcome.error}")
        return
    if not outcome.sipp.ok:
        outcome.error = f"sipp rc {outcome.sipp.rc}, {outcome.sipp.failed} failed"
        log(f"{outcome.cid_prefix}: {outcome.error}\n{outcome.sipp.explain()[-3000:]}")


# -- sipp's logs -----------------------------------------------------------------------------------------

_BLOCK = re.compile(r"^-{20,} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)\s*$", flags=re.M)


def message_times(log_text: str) -> dict[str, float]:
    """Wall times (sipp's local-time stamps) of the INVITE sent, its 200 received and the ACK sent."""
    out: dict[str, float] = {}
    text = log_text.replace("\r\n", "\n")
    stamps = list(_BLOCK.finditer(text))
    for i, stamp in enumerate(stamps):
        body = text[stamp.end() : stamps[i + 1].start() if i + 1 < len(stamps) else len(text)].lstrip("\n")
        head, _, message = body.partition("\n")
        message = message.lstrip("\n")
        try:
            at = datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        except ValueError:
            continue
        if " message sent" in head:
            if message.startswith("INVITE ") and "invite_sent" not in out:
                out["invite_sent"] = at
            elif message.startswith("ACK ") and "ack_sent" not in out:
                out["ack_sent"] = at
        elif " message received" in head and message.startswith("SIP/2.0 200"):
            cseq = re.search(r"^CSeq:\s*\d+\s+(\S+)", message, flags=re.M | re.I)
            if cseq and cseq.group(1).upper() == "INVITE" and "ok_received" not in out:
                out["ok_received"] = at
    return out


def rtt_setup_ms(workdir: Path) -> float | None:
    """sipp's response time 1 (INVITE sent -> 200 received, ms) from its -trace_rtt file."""
    for path in sorted(workdir.glob("*_rtt.csv")):
        with contextlib.suppress(OSError):
            for line in path.read_text(errors="replace").splitlines()[1:]:
                fields = line.split(";")
                if len(fields) >= 3 and fields[2].strip() == "1":
                    with contextlib.suppress(ValueError):
                        return float(fields[1])
    return None


def read_sipp_logs(outcome: SessionOutcome) -> None:
    if outcome.sipp is not None:
        times = message_times(outcome.sipp.messages())
        outcome.invite_sent = times.get("invite_sent")
        outcome.ok_received = times.get("ok_received")
        outcome.ack_sent = times.get("ack_sent")
    outcome.setup_ms = rtt_setup_ms(outcome.workdir)


# -- scoring ---------------------------------------------------------------------------------------------


def score(outcomes: Sequence[SessionOutcome]) -> dict[str, Any]:
    latencies: list[float] = []
    lags: list[float] = []
    per_call_p50: list[float] = []
    errors = {s: 0 for s in SPEAKERS}
    ref_words = {s: 0 for s in SPEAKERS}
    finals = missing = split = interims = unmatched = 0
    for outcome in outcomes:
        offset = outcome.call_time_offset
        call_latencies: list[float] = []
        matched: dict[int, int] = {}  # id(span) -> finals matched
        hyps: dict[str, list[tuple[float, str]]] = {s: [] for s in SPEAKERS}
        for event, arrival in zip(outcome.events, outcome.arrivals, strict=True):
            if event.get("type") != "transcript":
                continue
            t = event["transcript"]
            speaker = t.get("speaker", "")
            start, end = float(t.get("start", 0.0)) - offset, float(t.get("end", 0.0)) - offset  # pcap time
            if not t.get("isFinal"):
                interims += 1
                if outcome.start_ref is not None:
                    lags.append(arrival - (outcome.start_ref + max(0.0, end)))
                continue
            if not t.get("text", "").strip():
                continue
            finals += 1
            if speaker in hyps:
                hyps[speaker].append((start, t["text"]))
            span = best_span(outcome.plan.spans.get(speaker, []), start, end)
            if span is None:
                unmatched += 1
                continue
            matched[id(span)] = matched.get(id(span), 0) + 1
            if outcome.start_ref is not None:
                call_latencies.append(arrival - (outcome.start_ref + span.end))
        latencies.extend(call_latencies)
        if call_latencies:
            per_call_p50.append(float(np.median(call_latencies)))
        for speaker in SPEAKERS:
            spans = outcome.plan.spans[speaker]
            missing += sum(1 for s in spans if id(s) not in matched)
            split += sum(1 for s in spans if matched.get(id(s), 0) > 1)
            reference = " ".join(s.utterance.ref for s in spans)
            hypothesis = " ".join(text for _, text in sorted(hyps[speaker]))
            e, w = word_errors(reference, hypothesis)
            errors[speaker] += e
            ref_words[speaker] += w
    total_errors, total_words = sum(errors.values()), sum(ref_words.values())
    return {
        "final_latency_p50": percentile(latencies, 50),
        "final_latency_p95": percentile(latencies, 95),
        "final_latency_max": round(max(latencies), 3) if latencies else None,
        "final_latency_p50_worst_call": round(max(per_call_p50), 3) if per_call_p50 else None,
        "interim_lag_p50": percentile(lags, 50),
        "interim_lag_p95": percentile(lags, 95),
        "interims": interims,
        "wer": round(total_errors / total_words, 4) if total_words else None,
        "wer_rep": round(errors["rep"] / ref_words["rep"], 4) if ref_words["rep"] else None,
        "wer_customer": round(errors["customer"] / ref_words["customer"], 4) if ref_words["customer"] else None,
        "finals": finals,
        "finals_unmatched": unmatched,
        "missing_finals": missing,
        "utterances_split": split,
    }


def setup_stats(outcomes: Sequence[SessionOutcome]) -> dict[str, Any]:
    setup = [o.setup_ms for o in outcomes if o.setup_ms is not None]
    errors = [
        1000.0 * (o.started_arrival - o.ack_sent)
        for o in outcomes
        if o.started_arrival is not None and o.ack_sent is not None
    ]
    return {
        "setup_ms_p50": percentile(setup, 50),
        "setup_ms_p95": percentile(setup, 95),
        "setup_ms_max": max(setup) if setup else None,
        "setup_measured": len(setup),
        # call_started arrival minus the ACK: the error had pcap time 0 been taken as call_started's arrival
        "start_ref_error_ms_p50": percentile(errors, 50),
        "start_ref_error_ms_max": round(max(errors), 1) if errors else None,
        "start_ref_from_ack": sum(1 for o in outcomes if o.ack_sent is not None),
    }


# -- server and load generator resources ----------------------------------------------------------------


class LoadSampler(Sampler):
    """call_load's Sampler, with the sipp processes this script runs counted as the load generator."""

    def sample(self) -> None:
        cpu, rss = tree_usage(self.pid)
        own = self.me.cpu_times()
        client = own.user + own.system + own.children_user + own.children_system  # reaped sipp included
        with contextlib.suppress(psutil.Error):
            for child in self.me.children():
                if child.pid == self.pid:
                    continue  # the server (a child of this process when it started it)
                with contextlib.suppress(psutil.Error):
                    times = child.cpu_times()
                    client += times.user + times.system
        self.samples.append((time.monotonic(), cpu, rss, machine_busy_seconds(), client))


def sip_env(sip_port: int, rtp_ports: tuple[int, int], codec: str) -> dict[str, str]:
    return {
        "MEDIA_SERVER_SIP__ENABLED": "true",
        "MEDIA_SERVER_SIP__HOST": "127.0.0.1",
        "MEDIA_SERVER_SIP__PORT": str(sip_port),
        "MEDIA_SERVER_SIP__TRANSPORTS": '["udp"]',
        "MEDIA_SERVER_SIP__RTP_PORT_MIN": str(rtp_ports[0]),
        "MEDIA_SERVER_SIP__RTP_PORT_MAX": str(rtp_ports[1]),
        "MEDIA_SERVER_SIP__TEAM": TEAM,
        "MEDIA_SERVER_SIP__CONSENT": "granted",
        "MEDIA_SERVER_SIP__REP_DOMAINS": json.dumps([REP_DOMAIN]),
        "MEDIA_SERVER_SIP__ALLOW": '["127.0.0.1/32"]',
        "MEDIA_SERVER_SIP__CODECS": json.dumps([codec]),
        "MEDIA_SERVER_SIP__RTP_TIMEOUT_S": "15",
    }


# -- the sweep -------------------------------------------------------------------------------------------


async def stored_ok(url: str, token: str, call_id: str | None) -> bool:
    if call_id is None:
        return False
    try:
        record = await asyncio.to_thread(http_json, f"{url}/v1/calls/{call_id}", token)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        log(f"GET /v1/calls/{call_id} failed: {exc!r}")
        return False
    return record.get("status") == "completed" and bool(record.get("transcript"))


async def measure(
    n: int,
    utterances: list[Utterance],
    args: argparse.Namespace,
    url: str,
    token: str,
    pid: int,
    target: str,
    rng: random.Random,
    tag: str,
    scratch: Path,
) -> dict[str, Any]:
    plans = plan_calls(utterances, n, args.duration, args.gap, args.stagger, rng, tag)
    outcomes: list[SessionOutcome] = []
    setups: list[tuple[dict[str, str], dict[str, Path], float]] = []
    for i, plan in enumerate(plans):
        workdir = scratch / f"n{n}c{i}"
        rep, customer = plan.recording.channels
        media = write_siprec_media(workdir, rep, customer, args.codec)
        outcomes.append(SessionOutcome(plan, f"{tag}n{n}c{i}", workdir))
        setups.append((sipp_variables(plan, i, media.duration_s), media.files, media.duration_s))
    longest = max(d + p.delay_s for (_, _, d), p in zip(setups, plans, strict=True))
    log(f"N={n}: {n} SIPREC session(s) of {min(d for _, _, d in setups):.1f}-{longest:.1f} s")
    before = (await wait_idle(url, token, 60)).get("scheduler", {})
    other_before = await wait_quiet(pid, args.wait_quiet) if args.wait_quiet > 0 else None
    events = TeamEvents(f"ws{url[4:]}/v1/events?token={token}", outcomes)
    collector = asyncio.create_task(events.run(longest + 240))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(events.subscribed.wait(), 30)
    await asyncio.sleep(0.2)  # the subscription is registered server-side once the handshake is done
    sampler = LoadSampler(pid, 0.5)
    sampler.start()
    t0 = time.monotonic()
    try:
        async with asyncio.timeout(longest + 180):
            await asyncio.gather(
                *(
                    run_session(o, target, variables, files, duration + 60)
                    for o, (variables, files, duration) in zip(outcomes, setups, strict=True)
                )
            )
            # call_ended follows the BYE; give it (and the last finals) a bounded time to arrive
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(collector), 60)
    finally:
        await sampler.stop()
        if not collector.done():
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
    elapsed = time.monotonic() - t0
    for outcome in outcomes:
        read_sipp_logs(outcome)
        outcome.stored = await stored_ok(url, token, outcome.call_id)
    result: dict[str, Any] = {"calls": n, **score(outcomes), **setup_stats(outcomes), **sampler.summary()}
    result["calls_started"] = sum(1 for o in outcomes if o.call_id is not None)
    result["calls_completed"] = sum(1 for o in outcomes if o.ended_status == "completed")
    result["calls_stored"] = sum(1 for o in outcomes if o.stored)
    result["sipp_ok"] = sum(1 for o in outcomes if o.sipp is not None and o.sipp.ok)
    result["ended_reasons"] = sorted({o.ended_reason or "-" for o in outcomes})
    result["events_error"] = events.error
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
        f"interim lag p50 {result['interim_lag_p50']} s, WER {result['wer']} (rep {result['wer_rep']}, customer "
        f"{result['wer_customer']}), finals {result['finals']} (missing {result['missing_finals']}), setup p50 "
        f"{result['setup_ms_p50']} ms, completed {result['calls_completed']}/{n}, stored {result['calls_stored']}, "
        f"CPU {result['cpu_percent']} %, RSS {result['rss_mb']} MB, load generator {result['client_cpu_percent']} %, "
        f"other load {result['other_cpu_percent']} %"
    )
    return result


def dump_details(path: Path, n: int, outcomes: Sequence[SessionOutcome]) -> None:
    """Append every session's references, sipp times, events and arrival times (one JSON line each) to ``path``."""
    with path.open("a") as f:
        for o in outcomes:
            row = {
                "calls": n,
                "sip_call_id_prefix": o.cid_prefix,
                "call_id": o.call_id,
                "invite_sent": o.invite_sent,
                "ok_received": o.ok_received,
                "ack_sent": o.ack_sent,
                "started_arrival": o.started_arrival,
                "setup_ms": o.setup_ms,
                "call_time_offset": o.call_time_offset,
                "spans": {k: [[s.start, s.end, s.utterance.ref] for s in v] for k, v in o.plan.spans.items()},
                "events": [
                    {**e, "arrival": a, "sentAtEnd": o.sent_at(float(e["transcript"].get("end", 0.0)))}
                    if e.get("type") == "transcript"
                    else {**e, "arrival": a}
                    for e, a in zip(o.events, o.arrivals, strict=True)
                ],
            }
            f.write(json.dumps(row) + "\n")


async def warm_up(utterances: list[Utterance], url: str, token: str, target: str, scratch: Path, codec: str) -> None:
    """One short SIPREC session so that first-use costs (model warm-up, lazy imports) do not land on the first N."""
    _, pcm = track(utterances[:2], 0.3, 0.8, 6.0)
    pcm = np.concatenate([pcm, np.zeros(SAMPLE_RATE, dtype=np.int16)])
    workdir = scratch / "warmup"
    media = write_siprec_media(workdir, pcm, pcm.copy(), codec)
    log(f"warm-up session ({media.duration_s:.1f} s)")
    try:
        result = await run_sipp(SCENARIO, target, workdir=workdir, files=media.files, timeout_s=media.duration_s + 60)
    except (OSError, ValueError, RuntimeError) as exc:
        log(f"warm-up failed: {exc!r}")
    else:
        if not result.ok:
            log(f"warm-up session failed:\n{result.explain()[-3000:]}")
    await wait_idle(url, token, 60)


async def sweep(args: argparse.Namespace, url: str, token: str, pid: int, target: str, scratch: Path) -> dict[str, Any]:
    utterances = load_tel8k(Path(args.speech_dir))
    log(f"{len(utterances)} tel8k_sim utterances, {sum(u.duration for u in utterances):.1f} s")
    rng = random.Random(args.seed)
    tag = f"sl{os.getpid():x}{int(time.time()) % 100000:05d}"
    status = await asyncio.to_thread(http_json, f"{url}/v1/status", token)
    log(f"server: model {status.get('model')} on {status.get('device')}; SIPREC on {target}")
    if not args.no_warmup:
        await warm_up(utterances, url, token, target, scratch, args.codec)
    results = []
    for n in args.calls:
        results.append(await measure(n, utterances, args, url, token, pid, target, rng, tag, scratch))
        await asyncio.sleep(args.pause)
    return {
        "machine": machine_info(),
        "server": {"model": status.get("model"), "device": status.get("device"), "version": status.get("version")},
        "config": {
            "duration_s": args.duration,
            "gap_s": args.gap,
            "stagger_s": args.stagger,
            "seed": args.seed,
            "codec": args.codec,
            "transport": "udp",
            "rtp_ports": list(args.rtp_ports),
            "latency_reference": "pcap time 0 = ACK sent (sipp message log); fallback call_started arrival",
        },
        "results": results,
        "max_calls_p95_under_1_5s": max_calls_under(results, LATENCY_TARGET_S),
    }


def parse_ports(text: str) -> tuple[int, int]:
    try:
        low, high = (int(x) for x in text.split("-"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--rtp-ports wants LOW-HIGH, got {text!r}") from exc
    if not 1024 <= low < high - 1 <= 65534:
        raise argparse.ArgumentTypeError("--rtp-ports wants 1024 <= LOW < HIGH - 1 <= 65534")
    return low, high


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = build_parser(__doc__, running_server=False)
    p.set_defaults(calls=[4, 8, 16], duration=30.0, stagger=0.0)
    p.add_argument("--codec", choices=("PCMU", "PCMA"), default="PCMU", help="G.711 law of the RTP")
    p.add_argument(
        "--rtp-ports",
        type=parse_ports,
        default=(20000, 27998),
        help="the server's RTP port range, LOW-HIGH (keep it below the ephemeral ports sipp's are picked from)",
    )
    p.add_argument("--sip-port", type=int, default=0, help="the server's SIP port (0: a free one)")
    p.add_argument("--keep", action="store_true", help="keep the pcaps and sipp logs (their folder is logged)")
    return check_args(p, p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("sipp") is None:
        log("sipp is not installed (apt-get install sip-tester)")
        return 2
    server: OwnServer | None = None
    scratch = Path(tempfile.mkdtemp(prefix="siprec_load_"))
    with terminate_as_interrupt():
        try:
            port = args.port or free_port()
            sip_port = args.sip_port or free_udp_port()
            log(f"starting media-server on 127.0.0.1:{port}, SIPREC on 127.0.0.1:{sip_port}")
            server, url, token = start_server(port, args.startup_timeout, sip_env(sip_port, args.rtp_ports, args.codec))
            target = f"127.0.0.1:{sip_port}"
            report = asyncio.run(
                asyncio.wait_for(sweep(args, url, token, server.process.pid, target, scratch), sweep_budget(args))
            )
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
            if args.keep:
                log(f"pcaps and sipp logs kept in {scratch}")
            else:
                shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
