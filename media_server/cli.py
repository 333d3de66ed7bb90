"""``media-server``: serve, run a recognition worker, manage keys, stream a call, transcribe a file."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from media_server import __version__
from media_server.auth.keys import Role
from media_server.config import Settings, load_settings
from media_server.keys_cli import add_commands as add_key_commands
from media_server.keys_cli import expiry


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "log_format"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "grpc_port", None) is not None:
        overrides["grpc"] = {"port": args.grpc_port}
    tls = {name: getattr(args, f"tls_{name}", None) for name in ("cert", "key")}
    if any(tls.values()):
        overrides["tls"] = {name: value for name, value in tls.items() if value is not None}
    return load_settings(getattr(args, "config", None), **overrides)


def _configure_logging(level: str, log_format: str = "text") -> None:
    from media_server.logs import configure_logging

    configure_logging(level, log_format)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from media_server.app import create_app
    from media_server.connections import ConnectionLimits, uvicorn_limits
    from media_server.logs import keep_queries_out_of_logs, uvicorn_log_config
    from media_server.serving import GracefulServer
    from media_server.store.lock import DataDirLock, DataDirLocked, private_dir

    settings = _settings(args)
    _configure_logging(settings.log_level, settings.log_format)
    if settings.tls.client_ca is not None and not settings.tls.enabled:
        print("error: tls.client_ca needs the server's own certificate: --tls-cert and --tls-key", file=sys.stderr)
        return 2
    private_dir(settings.data_dir)
    try:  # say it plainly before anything starts (the lifespan takes the lock for real, and fails the same way)
        probe = DataDirLock(settings.data_dir)
        probe.acquire()
        probe.release()
    except DataDirLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app = create_app(settings)
    limits = ConnectionLimits(
        settings.http.header_timeout_s, settings.http.max_connections, settings.calls.retry_after_s
    )
    app.state.connection_limits = limits  # (/metrics counts what they refused)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=uvicorn_log_config(settings.log_format),
        ws="websockets-sansio",  # websockets' current API (uvicorn's default implementation uses its deprecated one)
        ws_max_size=settings.ingest.max_frame_bytes * 2,
        ws_ping_interval=20,
        ws_ping_timeout=20,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls.cert,  # HTTPS and WSS (gRPC takes the same pair: rpc/server.py)
        ssl_keyfile=settings.tls.key,
        **uvicorn_limits(limits, settings.http.keepalive_timeout_s),
    )
    keep_queries_out_of_logs()  # (uvicorn.Config configured its loggers just now)
    server = GracefulServer(config, app)
    server.run()  # SIGTERM: the calls end (server_shutdown) before the connections close
    return 0 if server.started else 1  # (the lifespan failed: another server took the data dir meanwhile, ...)


def cmd_worker(args: argparse.Namespace) -> int:
    from media_server.workers.server import serve_worker

    overrides: dict[str, Any] = {}
    if args.device is not None:
        device, _, index = args.device.partition(":")
        if index:  # cuda:1: CTranslate2 and torch see that one GPU only, as their device 0
            os.environ["CUDA_VISIBLE_DEVICES"] = index
        overrides["asr"] = {"device": device}
    names = ("host", "port", "key_file", "tls_cert", "tls_key", "tls_ca")
    workers = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if workers:
        overrides["workers"] = workers
    try:
        settings = load_settings(args.config, **overrides)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve_worker(settings))
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from media_server.store.lock import private_dir
    from media_server.store.store import Store

    settings = _settings(args)

    async def create() -> str:
        private_dir(settings.data_dir)
        store = Store(settings.db_url)
        await store.open()
        try:
            key, secret = await store.create_key(args.team, Role(args.role), args.label or "", expiry(args.expires_in))
        finally:
            await store.close()
        print(f"created {key.role.value} key {key.id} for team {key.team}; it is shown only once:")
        return secret

    try:
        print(asyncio.run(create()))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def _metadata(args: argparse.Namespace) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for item in args.meta or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--meta expects KEY=VALUE, got {item!r}")
        meta[key] = value
    meta.setdefault("repConsent", args.rep_consent)
    meta.setdefault("customerConsent", args.customer_consent)
    return meta


def _stream_key(args: argparse.Namespace) -> str | None:
    """The API key: ``MEDIA_SERVER_TOKEN`` or ``--token-file`` (a key on the command line is seen by every local
    user in ``ps``: ``--token`` still works, with a warning)."""
    if args.token:
        print(
            "warning: --token shows the key to every user of this machine (ps); use MEDIA_SERVER_TOKEN or --token-file",
            file=sys.stderr,
        )
        return str(args.token)
    if args.token_file is not None:
        lines = args.token_file.read_text().split()
        return lines[0] if lines else None
    return os.environ.get("MEDIA_SERVER_TOKEN") or None


def cmd_stream(args: argparse.Namespace) -> int:
    from media_server.client.stream import print_events, stream_call
    from media_server.client.wav import read_wav

    token = _stream_key(args)
    if token is None:
        print("error: no API key: set MEDIA_SERVER_TOKEN (or --token-file PATH)", file=sys.stderr)
        return 2
    args.token = token
    recording = read_wav(args.file)
    call_id = args.call_id

    async def run() -> int:
        import uuid

        cid = call_id or ("CA" + uuid.uuid4().hex)
        printer = None if args.quiet else asyncio.create_task(print_events(args.url, cid, args.token))
        result = await stream_call(
            recording,
            args.url,
            args.protocol,
            args.token,
            call_id=cid,
            metadata=_metadata(args),
            speed=args.speed,
            speaker=args.speaker,
            token_in_header=args.header,
        )
        if printer is not None:
            try:
                await asyncio.wait_for(printer, 15)
            except TimeoutError:
                printer.cancel()
        print(
            f"streamed {result.frames_sent * 0.02:.1f} s of audio as call {result.call_id}; "
            f"server closed with {result.close_code} {result.close_reason}".rstrip()
        )
        return 0 if result.close_code in (1000, None) else 1

    return asyncio.run(run())


def cmd_transcribe(args: argparse.Namespace) -> int:
    from media_server.audio_files import AudioFileError, open_audio

    settings = _settings(args)
    _configure_logging("warning")
    try:
        audio = open_audio(args.file)  # (before the pipeline's imports: a wrong file is told at once)
    except AudioFileError as exc:
        print(f"media-server transcribe: {exc}", file=sys.stderr)
        return 1
    from media_server.services import build_scheduler, streaming_config
    from media_server.transcribe import ProgressBar, transcribe_audio
    from models.vad import SileroVAD

    bar = ProgressBar(args.file.name, audio.duration)
    scheduler = build_scheduler(settings)
    try:
        vad = SileroVAD(settings.vad.model_path)
        segments = asyncio.run(transcribe_audio(audio, vad, scheduler, streaming_config(settings), bar))
    except AudioFileError as exc:
        bar.done()
        print(f"media-server transcribe: {exc}", file=sys.stderr)
        return 1
    finally:
        scheduler.close()
        audio.close()
    bar.done()
    if args.json:
        print(json.dumps([s.__dict__ for s in segments], indent=2))
    else:
        for s in segments:
            label = f"{s.speaker}: " if s.speaker != "speaker" else ""
            print(f"[{s.start:7.2f} - {s.end:7.2f}] {label}{s.text}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="media-server", description=__doc__)
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="where the database lives (default ./data)")
        p.add_argument("--config", type=Path, help="a TOML or JSON settings file")

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--grpc-port", type=int, help="the gRPC API's port (default 50051; 0: any free port)")
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain: HTTPS, WSS and gRPC over TLS (tls.cert)")
    serve.add_argument("--tls-key", type=Path, help="its PEM private key (tls.key)")
    serve.add_argument("--log-format", choices=["text", "json"], help="json: one JSON object per line (log_format)")
    common(serve)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser(
        "worker", help="run a recognition worker: the decode scheduler behind gRPC, for media nodes (workers.urls)"
    )
    worker.add_argument("--device", help="the engine's device: cpu, cuda, cuda:0 ... (default asr.device)")
    worker.add_argument("--host", help="address to bind (default workers.host, 127.0.0.1)")
    worker.add_argument("--port", type=int, help="port to listen on (default workers.port, 50061; 0: any free port)")
    worker.add_argument(
        "--key-file", type=Path, help="file whose first line is the shared key (or MEDIA_SERVER_WORKERS__KEY)"
    )
    worker.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve TLS (workers.tls_cert)")
    worker.add_argument("--tls-key", type=Path, help="its PEM private key (workers.tls_key)")
    worker.add_argument("--tls-ca", type=Path, help="require nodes' client certificates signed by this CA")
    worker.add_argument("--config", type=Path, help="a TOML or JSON settings file")
    worker.set_defaults(func=cmd_worker)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; it is printed as the last line")
    create.add_argument("--team", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--label", help="a note to recognise the key by")
    create.add_argument("--expires-in", help="the key expires after this: 90d, 12h, 30m, 2w or seconds (default never)")
    common(create)
    create.set_defaults(func=cmd_keys_create)
    add_key_commands(keys_sub, common, _settings)  # list, revoke, rotate

    stream = sub.add_parser("stream", help="play a WAV file into the server as a telephony platform would")
    stream.add_argument("file", type=Path)
    stream.add_argument("--url", default="ws://127.0.0.1:8080", help="server base URL or full ingest URL")
    stream.add_argument("--protocol", choices=["twilio", "l16"], default="twilio")
    stream.add_argument("--token", help="API key (seen in ps by every user: prefer MEDIA_SERVER_TOKEN or --token-file)")
    stream.add_argument("--token-file", type=Path, help="a file whose first word is the API key")
    stream.add_argument("--header", action="store_true", help="send the key as an Authorization header")
    stream.add_argument("--call-id")
    stream.add_argument(
        "--speaker",
        choices=["rep", "customer", "mixed"],
        default="customer",
        help="who a mono file is (mixed: both, l16 only)",
    )
    stream.add_argument("--rep-consent", default="granted", choices=["granted", "denied", "unknown"])
    stream.add_argument("--customer-consent", default="granted", choices=["granted", "denied", "unknown"])
    stream.add_argument("--meta", action="append", metavar="KEY=VALUE", help="call metadata (repeatable)")
    stream.add_argument("--speed", type=float, default=1.0, help="playback speed (1 = real time)")
    stream.add_argument("--quiet", action="store_true", help="do not print the call's transcript")
    stream.set_defaults(func=cmd_stream)

    transcribe = sub.add_parser(
        "transcribe",
        help="transcribe an audio file (WAV, MP3, FLAC, OGG, Opus, M4A) with the live pipeline; stereo: rep left, "
        "customer right; a progress bar on a terminal",
    )
    transcribe.add_argument("file", type=Path)
    transcribe.add_argument("--json", action="store_true")
    common(transcribe)
    transcribe.set_defaults(func=cmd_transcribe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
