"""What does batched decoding buy? The call-load sweep run twice: batching on (defaults) and off (max batch 1).

Run from the repository root::

    .venv/bin/python benchmarks/asr_capacity.py --calls 4,8,12,16 --duration 40

It reuses ``benchmarks/call_load.py``: for each mode it starts a server of its own (one after the other, never
both at once), plays the same sweep of N concurrent real-time two-party Twilio calls (same seed, so the same
call plans), and stops the server. "batching on" is the server's defaults; "batching off" is the same server
started with ``MEDIA_SERVER_ASR__MAX_BATCH=1`` and nothing else changed.

Before the sweeps it also measures the OFFLINE WER of the same speech: every ``tel8k_sim`` utterance the calls
are built from, resampled 8 kHz -> 16 kHz as the server does, decoded whole by the engine directly (one
utterance at a time) and scored with call_load's normalisation. A call's WER minus this is what streaming
(endpointing, interims, load) costs in accuracy.

With ``--baseline REV`` it compares two versions of the code instead (the issue-13 capacity rule)::

    .venv/bin/python benchmarks/asr_capacity.py --calls 4 --duration 40 --baseline a184557 --rounds 3

the same sweep, batching on, against this tree's server and REV's (a temporary ``git worktree``, same virtual
environment), alternately (this, REV, this, REV...), ``--rounds`` times each; it prints per version the median
server CPU-seconds per call-second, p95 final latency and WER for each N, every run, and the ratios this / REV.

One JSON document goes to stdout; progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import call_load  # noqa: E402  (also puts the repository root on sys.path)
from threadpoolctl import threadpool_limits  # noqa: E402

from media_server.config import load_settings  # noqa: E402
from models.asr.engine import DecodeRequest  # noqa: E402
from models.asr.whisper_ct2 import WhisperCT2Engine  # noqa: E402
from models.audio import MODEL_SAMPLE_RATE, int16_to_float32, resample  # noqa: E402

log = call_load.log

MAX_BATCH_ENV = "MEDIA_SERVER_ASR__MAX_BATCH"
#: mode -> environment changes of its server (None: removed, so that the server's default applies)
MODES: dict[str, dict[str, str | None]] = {
    "batching_on": {MAX_BATCH_ENV: None},
    "batching_off": {MAX_BATCH_ENV: "1"},
}
TARGET_CALLS = 16
WER_WITHIN_POINTS = 2
OFFLINE_CPU_THREADS = 2
ROW_KEYS = (
    "calls",
    "final_latency_p50",
    "final_latency_p95",
    "interim_lag_p50",
    "wer",
    "wer_minus_offline_points",
    "cpu_percent",
    "rss_mb",
    "mean_batch_size",
    "missing_finals",
    "interims_dropped",
)


# -- offline WER -----------------------------------------------------------------------------------------


def offline_wer(speech_dir: Path) -> tuple[float, str]:
    """WER of the tel8k_sim utterances decoded whole, one at a time; and the engine's model name."""
    threadpool_limits(1)  # as the server: BLAS threads would spin against the decode threads
    utterances = call_load.load_tel8k(speech_dir)
    settings = load_settings()  # the MEDIA_SERVER_* environment the servers see: same model, same keyterms
    a = settings.asr
    log(f"offline: loading the engine (model {a.model or 'default'}, {a.device}, {a.compute_type})")
    engine = WhisperCT2Engine(
        model=a.model,
        device=a.device,
        compute_type=a.compute_type,
        cpu_threads=OFFLINE_CPU_THREADS,
        download_root=a.download_root,
    )
    hotwords = tuple(settings.streaming.keyterms)
    errors = words = 0
    started = time.monotonic()
    try:
        for u in utterances:
            audio = resample(int16_to_float32(u.pcm), call_load.SAMPLE_RATE, MODEL_SAMPLE_RATE)
            text = engine.decode_batch([DecodeRequest(audio, final=True, hotwords=hotwords)])[0].text
            e, w = call_load.word_errors(u.ref, text)
            errors += e
            words += w
            log(f"offline: {u.id} ({u.duration:.1f} s): {e}/{w} errors: {text!r}")
        name = engine.name
    finally:
        del engine  # free the model before the servers load theirs
        gc.collect()
    if not words:
        raise RuntimeError("the reference utterances have no words")
    wer = round(errors / words, 4)
    log(f"offline WER {wer} ({errors}/{words} words, {len(utterances)} utterances, {time.monotonic() - started:.1f} s)")
    return wer, name


# -- the two sweeps --------------------------------------------------------------------------------------


def mode_args(args: argparse.Namespace, mode: str) -> argparse.Namespace:
    """The sweep's options for one mode: --details goes to a file of its own (NAME.MODE.EXT)."""
    out = argparse.Namespace(**vars(args))
    if args.details:
        path = Path(args.details)
        out.details = str(path.with_name(f"{path.stem}.{mode}{path.suffix}"))
    return out


def run_mode(args: argparse.Namespace, mode: str, env: Mapping[str, str | None]) -> dict[str, Any]:
    """Start a server with ``env``, run call_load's sweep against it (bounded), stop the server."""
    port = args.port or call_load.free_port()
    changes = ", ".join(f"{k}={v}" if v is not None else f"{k} unset" for k, v in env.items())
    log(f"{mode}: starting media-server on 127.0.0.1:{port} ({changes})")
    server, url, token = call_load.start_server(port, args.startup_timeout, env)
    try:
        budget = call_load.sweep_budget(args)
        report: dict[str, Any] = asyncio.run(
            asyncio.wait_for(call_load.sweep(args, url, token, server.process.pid), budget)
        )
    except Exception:
        log(f"{mode}: server log (tail):\n{server.log_tail()}")
        raise
    finally:
        log(f"{mode}: stopping the server")
        server.stop()
    return report


# -- the report ------------------------------------------------------------------------------------------


def row(result: Mapping[str, Any], offline: float) -> dict[str, Any]:
    wer = result.get("wer")
    out = {k: result.get(k) for k in ROW_KEYS}
    out["wer_minus_offline_points"] = round(100.0 * (wer - offline), 2) if wer is not None else None
    out["interims_dropped"] = (result.get("scheduler_delta") or {}).get("interimsDropped")
    return out


def ratio(off: Any, on: Any) -> float | None:
    if not isinstance(off, int | float) or not isinstance(on, int | float) or on <= 0:
        return None
    return round(off / on, 3)


def ratios(on_rows: Sequence[Mapping[str, Any]], off_rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    off_by_calls = {r["calls"]: r for r in off_rows}
    out = []
    for on in on_rows:
        off = off_by_calls.get(on["calls"])
        if off is None:
            continue
        out.append(
            {
                "calls": on["calls"],
                "final_latency_p95_off_over_on": ratio(off["final_latency_p95"], on["final_latency_p95"]),
                "interim_lag_p50_off_over_on": ratio(off["interim_lag_p50"], on["interim_lag_p50"]),
                "cpu_off_over_on": ratio(off["cpu_percent"], on["cpu_percent"]),
            }
        )
    return out


def cpu_per_call_s(result: Mapping[str, Any]) -> float | None:
    """Server CPU-seconds per second of call audio (both tracks of a call are one call)."""
    cpu = result.get("cpu_percent")
    return None if cpu is None else round(cpu / 100 / result["calls"], 4)


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """This tree's server against ``args.baseline``'s, alternately, ``args.rounds`` times each."""
    runs: dict[str, list[list[dict[str, Any]]]] = {"this": [], "baseline": []}
    with call_load.baseline_tree(args.baseline) as baseline_env:
        for round_ in range(args.rounds):
            for version, env in (("this", {}), ("baseline", baseline_env)):
                if round_ or version != "this":
                    time.sleep(args.pause)
                report = run_mode(args, f"round {round_ + 1} {version}", env)
                runs[version].append([dict(r, cpu_s_per_call_s=cpu_per_call_s(r)) for r in report["results"]])

    def median(version: str, calls: int, key: str) -> float | None:
        values = [r[key] for rs in runs[version] for r in rs if r["calls"] == calls and r.get(key) is not None]
        return round(statistics.median(values), 4) if values else None

    keys = ("cpu_s_per_call_s", "final_latency_p95", "wer", "missing_finals")
    summary = {v: [{"calls": n, **{k: median(v, n, k) for k in keys}} for n in args.calls] for v in runs}
    ratios = []
    for this, base in zip(summary["this"], summary["baseline"], strict=True):
        ratios.append(
            {
                "calls": this["calls"],
                "cpu_s_per_call_s": ratio(this["cpu_s_per_call_s"], base["cpu_s_per_call_s"]),
                "final_latency_p95": ratio(this["final_latency_p95"], base["final_latency_p95"]),
            }
        )
    return {
        "machine": call_load.machine_info(),
        "config": {"calls": args.calls, "duration_s": args.duration, "rounds": args.rounds, "baseline": args.baseline},
        "median": summary,
        "ratio_this_over_baseline": ratios,
        "runs": {
            v: [[{k: r.get(k) for k in (*ROW_KEYS, "cpu_s_per_call_s")} for r in rs] for rs in runs[v]] for v in runs
        },
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = call_load.build_parser(__doc__, running_server=False)
    p.add_argument("--baseline", help="git revision to compare this tree with (batching on), instead of on/off")
    p.add_argument("--rounds", type=int, default=3, help="with --baseline: alternating runs of each version")
    p.set_defaults(calls=[4, 8, 12, 16], duration=40.0)
    return call_load.check_args(p, p.parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if MAX_BATCH_ENV in os.environ:
        log(f"note: {MAX_BATCH_ENV} is set here; the batching-on server runs without it (the default)")
    if args.baseline:
        with call_load.terminate_as_interrupt():
            try:
                print(json.dumps(compare(args), indent=2))
            except KeyboardInterrupt:
                log("interrupted")
                return 130
        return 0
    reports: dict[str, dict[str, Any]] = {}
    with call_load.terminate_as_interrupt():
        try:
            offline, offline_model = offline_wer(Path(args.speech_dir))
            for i, (mode, env) in enumerate(MODES.items()):
                if i:
                    time.sleep(args.pause)
                reports[mode] = run_mode(mode_args(args, mode), mode, env)
                server_model = reports[mode].get("server", {}).get("model")
                if server_model != offline_model:
                    log(f"WARNING {mode}: the server ran {server_model}, the offline WER is of {offline_model}")
        except KeyboardInterrupt:
            log("interrupted")
            return 130
        except Exception as exc:
            log(f"failed: {exc!r}")
            if reports:
                log("results so far:\n" + json.dumps({m: r.get("results") for m, r in reports.items()}, indent=2))
            return 1
    on_rows = [row(r, offline) for r in reports["batching_on"]["results"]]
    off_rows = [row(r, offline) for r in reports["batching_off"]["results"]]
    for r in off_rows:
        if r["mean_batch_size"] is not None and r["mean_batch_size"] > 1:
            log(f"WARNING batching off, N={r['calls']}: mean batch size {r['mean_batch_size']} > 1")
    document = {
        "machine": call_load.machine_info(),
        "offline_wer": offline,
        "batching_on": on_rows,
        "batching_off": off_rows,
        "ratio": ratios(on_rows, off_rows),
        "max_calls_p95_under_1_5s": {
            "on": reports["batching_on"]["max_calls_p95_under_1_5s"],
            "off": reports["batching_off"]["max_calls_p95_under_1_5s"],
        },
        "target": {
            "calls": TARGET_CALLS,
            "p95_s": call_load.LATENCY_TARGET_S,
            "wer_within_points_of_offline": WER_WITHIN_POINTS,
        },
    }
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
