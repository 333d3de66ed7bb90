"""Does one client slow everyone? A victim call's final latency alone, and with another team streaming 40x faster.

Run from the repository root::

    .venv/bin/python benchmarks/fairness.py --duration 30 --rounds 2 --real-time-neighbour

It starts its own server (temp data dir; team ``bench`` is the victim's, team ``neighbour`` the fast stream's) and
plays the victim, a two-party stereo call of real speech (``tel8k_sim``, as ``call_load.py`` builds them), through
the Twilio ingest in real time, subscribed to its events: alone, then while the neighbour streams speech over L16 at
``--speed`` (40) times real time for as long as the victim's call lasts (calling again at once whenever the server
ends its call), ``--rounds`` times alternately (the same victim call each time). It reports the victim's final
latency (p50/p95/max over the rounds, as ``call_load.py`` measures it: a final's arrival minus the wall time at which
the end of its utterance had been sent) alone and with the neighbour, the ratio of the p95s (the target is 1.2 at
most), and what became of the neighbour: its calls and how they ended, the audio its client handed to the socket,
the audio the server read of it (each call's last final's end) and how fast.
``--real-time-neighbour`` adds the neighbour at real time: what a well-behaved call of another team costs the victim
on this machine (on a machine without room for a second call, the victim slows down whoever the neighbour is; the
40x neighbour's p95 over this one's is what the 40x costs beyond its fair share). ``--compare-unpaced`` runs it all
again on a second server with pacing off (``calls.pacing.enabled=false``): what the recogniser's fair share alone
does.

The load generator shares the machine with the server; on a busy machine run it more than once. One JSON document
goes to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.call_load import (  # noqa: E402
    BIN,
    DEFAULT_SPEECH,
    SAMPLE_RATE,
    CallOutcome,
    OwnServer,
    Utterance,
    free_port,
    http_json,
    load_tel8k,
    log,
    machine_info,
    plan_calls,
    run_call,
    score,
    start_server,
    track,
    wait_idle,
    warm_up,
)
from media_server.client.stream import FRAME_S  # noqa: E402

P95_TARGET = 1.2
CONSENT = {"repConsent": "granted", "customerConsent": "granted"}


def neighbour_key(server: OwnServer) -> str:
    """A key of another team, made on the running server's data dir."""
    created = subprocess.run(
        [str(BIN), "keys", "create", "--team", "neighbour", "--role", "admin", "--data-dir", str(server.data_dir)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return created.stdout.strip().splitlines()[-1]


async def neighbour(pcm: np.ndarray, url: str, token: str, speed: float, stop: asyncio.Event) -> list[dict[str, Any]]:
    """The neighbour's calls until ``stop`` is set: one after another, as a client that the server ended (too_fast)
    would call again at once."""
    calls: list[dict[str, Any]] = []
    while not stop.is_set():
        calls.append(await neighbour_call(pcm, url, token, speed, stop))
        if "error" in calls[-1]:
            await asyncio.sleep(0.5)
    return calls


async def neighbour_call(pcm: np.ndarray, url: str, token: str, speed: float, stop: asyncio.Event) -> dict[str, Any]:
    """Stream ``pcm`` (8 kHz mono) over L16 in 20 ms frames at ``speed`` x real time until ``stop`` is set (then
    hang up: a stop message would wait behind what the socket buffers hold) or the server ends the stream. No
    keepalive pings: a paced sender's ping waits behind the audio it has buffered, and it would give up on the
    connection."""
    call_id = "CAneighbour" + uuid.uuid4().hex[:12]
    step = int(FRAME_S * SAMPLE_RATE)
    sent = 0
    outcome: dict[str, Any] = {"call_id": call_id, "speed_asked": speed}
    started = time.monotonic()
    try:
        async with connect(f"{url.replace('http', 'ws', 1)}/v1/ingest/l16", ping_interval=None, close_timeout=1) as ws:
            start = {"callSid": call_id, "sampleRate": SAMPLE_RATE, "mixType": "mono", "speaker": "customer"}
            await ws.send(json.dumps({**start, "token": token, **CONSENT}))
            try:
                for i, offset in enumerate(range(0, pcm.size, step)):
                    if stop.is_set():
                        break
                    delay = started + i * FRAME_S / speed - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await ws.send(pcm[offset : offset + step].astype("<i2").tobytes())
                    sent += 1
                if not stop.is_set():
                    await ws.send(json.dumps({"event": "stop"}))
                    await asyncio.wait_for(ws.wait_closed(), 60)
            except (ConnectionClosed, TimeoutError):
                pass
            outcome.update(close_code=ws.close_code, close_reason=ws.close_reason)
    except (ConnectionClosed, InvalidHandshake, OSError) as exc:
        outcome["error"] = repr(exc)
    wall = time.monotonic() - started
    outcome.update(
        audio_sent_s=round(sent * FRAME_S, 1),  # handed to the client's socket (kernel buffers hold a lot of it)
        wall_s=round(wall, 1),
    )
    return outcome


async def neighbour_for(args: argparse.Namespace, url: str, key: str, seconds: float) -> list[dict[str, Any]]:
    """The neighbour's calls for ``seconds``: speech (the utterances over and over) at ``--speed`` x real time."""
    _, pcm = track(load_tel8k(args.speech_dir), 0.3, 0.8, (seconds + 30) * args.speed)
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    return await neighbour(pcm, url, key, args.speed, stop)


def heard(url: str, token: str, call_id: str) -> float | None:
    """How far into its audio the server transcribed a stored call (its last final's end): what it read of it."""
    with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
        call = http_json(f"{url}/v1/calls/{call_id}", token)
        ends = [float(s.get("end", 0.0)) for s in call.get("transcript", [])]
        return max(ends) if ends else 0.0
    return None


async def victim_run(
    utterances: list[Utterance],
    args: argparse.Namespace,
    url: str,
    token: str,
    tag: str,
    key: str | None,
    speed: float = 0.0,
) -> tuple[CallOutcome, dict[str, Any] | None]:
    """The victim's call (the same one each time: same seed), alone or with the fast neighbour (team ``key``'s)
    alongside. The neighbour is a process of its own, so that its sending does not hold up this event loop, which
    times the victim's audio and finals."""
    ws = "ws" + url[4:]
    plan = plan_calls(utterances, 1, args.duration, 1.2, 0.0, random.Random(args.seed), tag)[0]
    pusher = None
    if key is not None:
        command = [sys.executable, __file__, "--speed", str(speed), "--speech-dir", str(args.speech_dir)]
        command += ["--neighbour-of", url, key, f"{plan.recording.duration + 1.0:.1f}"]
        pusher = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        await asyncio.sleep(1.0)  # the neighbour's burst is under way when the victim starts
    log(f"victim call {plan.call_id} ({plan.recording.duration:.0f} s){f' with a {speed:g}x neighbour' if key else ''}")
    outcome = await run_call(plan, url, ws, token, time.monotonic(), args.duration + 120)
    fast_outcome = None
    if pusher is not None and key is not None:
        out, _ = await pusher.communicate()
        sent: dict[str, Any] = json.loads(out or b'{"calls": []}')
        calls: list[dict[str, Any]] = sent["calls"]
        await wait_idle(url, token, 120)
        for call in calls:
            call["audio_heard_s"] = await asyncio.to_thread(heard, url, key, call["call_id"])
        wall = sum(c["wall_s"] for c in calls)
        read = sum(c["audio_heard_s"] or 0.0 for c in calls)
        fast_outcome = {
            "calls": len(calls),
            "ends": sorted({f"{c.get('close_code')} {c.get('close_reason') or c.get('error', '')}" for c in calls}),
            "audio_sent_s": round(sum(c["audio_sent_s"] for c in calls), 1),  # (kernel buffers hold much of it)
            "audio_heard_s": round(read, 1),  # what the server read of it (each call's last final's end)
            "wall_s": round(wall, 1),
            "speed_read": round(read / wall, 2) if wall else None,
            "client_cpu_s": sent.get("cpu_s"),  # the neighbour's own CPU (this machine's: it competes with the server)
        }
    await wait_idle(url, token, 120)
    return outcome, fast_outcome


async def pair(
    utterances: list[Utterance], args: argparse.Namespace, env: dict[str, str | None], label: str
) -> dict[str, Any]:
    """The victim alone, with a neighbour at real time, and with the fast neighbour, on a server of its own started
    with ``env``."""
    server, url, token = start_server(free_port(), 120, env)
    runs: dict[str, tuple[list[CallOutcome], list[dict[str, Any]], list[float]]] = {}
    conditions = [("alone", None, 0.0), ("with_neighbour", args.speed, args.speed)]
    if args.real_time_neighbour:
        conditions.insert(1, ("with_real_time_neighbour", 1.0, 1.0))
    try:
        log(f"{label}: server pid {server.process.pid}")
        key = neighbour_key(server)
        await warm_up(utterances, url, token)
        for r in range(args.rounds):  # alternately, so that the machine's other load falls on each alike
            for name, neighbour_speed, speed in conditions:
                tag = f"{label}{r}{name[:6]}"
                outcome, fast = await victim_run(
                    utterances, args, url, token, tag, key if neighbour_speed else None, speed
                )
                outcomes, neighbours, load = runs.setdefault(name, ([], [], []))
                outcomes.append(outcome)
                load.append(round(os.getloadavg()[0], 2))  # the machine's load meanwhile, to judge the figures by
                if fast is not None:
                    neighbours.append(fast)
    finally:
        server.stop()
    result: dict[str, Any] = {
        name: {**score(o), "load_avg_1m": load, **({"neighbour": n} if n else {})}
        for name, (o, n, load) in runs.items()
    }
    alone = result["alone"].get("final_latency_p95")
    for name in result:
        p95 = result[name].get("final_latency_p95")
        if name != "alone":
            result[name]["p95_ratio"] = round(p95 / alone, 3) if alone and p95 else None
    result["p95_ratio"] = result["with_neighbour"]["p95_ratio"]
    if "with_real_time_neighbour" in result:
        base = result["with_real_time_neighbour"].get("final_latency_p95")
        p95 = result["with_neighbour"].get("final_latency_p95")
        result["p95_ratio_to_real_time_neighbour"] = round(p95 / base, 3) if base and p95 else None
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    utterances = load_tel8k(args.speech_dir)
    out: dict[str, Any] = {
        "benchmark": "fairness",
        "machine": machine_info(),
        "victim_duration_s": args.duration,
        "rounds": args.rounds,
        "neighbour_speed": args.speed,
        "p95_ratio_target": P95_TARGET,
    }
    out["paced"] = await pair(utterances, args, {"MEDIA_SERVER_CALLS__PACING__ENABLED": "true"}, "paced")
    out["p95_ratio"] = out["paced"]["p95_ratio"]
    out["meets_target"] = out["p95_ratio"] is not None and out["p95_ratio"] <= P95_TARGET
    if args.compare_unpaced:
        out["unpaced"] = await pair(utterances, args, {"MEDIA_SERVER_CALLS__PACING__ENABLED": "false"}, "unpaced")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=40.0, help="the victim call's length (s)")
    p.add_argument("--speed", type=float, default=40.0, help="the neighbour's speed (x real time)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rounds", type=int, default=2, help="victim calls alone and with the neighbour, alternately")
    p.add_argument("--speech-dir", type=Path, default=DEFAULT_SPEECH)
    p.add_argument("--compare-unpaced", action="store_true", help="also on a server with pacing off")
    p.add_argument(
        "--real-time-neighbour",
        action="store_true",
        help="also with the neighbour at real time: what a well-behaved call of another team costs the victim",
    )
    p.add_argument("--neighbour-of", nargs=3, metavar=("URL", "KEY", "SECONDS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.neighbour_of:  # (the neighbour's process: its calls as JSON on stdout)
        url, key, seconds = args.neighbour_of
        calls = asyncio.run(neighbour_for(args, url, key, float(seconds)))
        json.dump({"calls": calls, "cpu_s": round(time.process_time(), 1)}, sys.stdout)
        return 0
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
