"""Deepgram-compatible live transcription: ``wss://HOST/v1/listen``, for clients written for Deepgram's API.

Switching such a client to this server is a change of URL. A stream is a call like any other (a
:class:`~media_server.calls.lifecycle.LiveCall` that reads its own events back): the dashboard and ``/v1/live`` show
it, insights run on it, consent holds, and it is stored when it ends.

The handshake is checked before anything else, and refused as Deepgram refuses it: HTTP 401 for a missing or
wrong key (``Authorization: Token KEY`` or ``Bearer KEY``, ``?token=``, or the browser's ``Sec-WebSocket-Protocol:
token, KEY``), 403 for a key of another team, 400 for parameters this server cannot honour, 409 for a call id in
use, 503 with ``Retry-After`` when the server holds all the calls it may (``calls.max_live``); the body and the
``dg-error`` header say what is wrong. Then two tasks run side by side: one reads the client (audio,
``KeepAlive``, ``Finalize``, ``CloseStream``), the other turns the call's events into Deepgram's messages
(``messages.py``). The query is read by ``options.py``, the audio by ``audio.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.responses import JSONResponse
from starlette.websockets import WebSocketDisconnect, WebSocketState

from media_server.audio import Audio
from media_server.auth.http import presented_key
from media_server.auth.keys import ApiKey
from media_server.auth.sessions import Held
from media_server.bus import SubscriberTooSlow
from media_server.calls.lifecycle import CallEnd, CallRefused, LiveCall, new_call_id
from media_server.calls.metadata import CallMetadata, Consent, MetadataError, parse_metadata
from media_server.ingest.deepgram.audio import AudioDecoder, AudioError
from media_server.ingest.deepgram.messages import (
    ErrorVariant,
    ModelInfo,
    error_message,
    metadata_message,
    results_message,
    speaker_number,
    speech_started_message,
    utterance_end_message,
)
from media_server.ingest.deepgram.options import ListenError, ListenOptions, parse_listen_query
from media_server.ingest.deepgram.refusals import Refused, refusal
from media_server.ingest.farewell import EndWatch, ServerEnded
from media_server.ingest.messages import CLOSE_INTERNAL, CLOSE_NORMAL, CLOSE_POLICY
from media_server.ingest.websocket import services_of
from media_server.services import Services
from media_server.v1 import events_pb2 as pb

log = logging.getLogger(__name__)

router = APIRouter(tags=["deepgram"])

# Deepgram's codes in close reasons: DATA for audio it cannot use, NET for a stream that went quiet.
_IDLE_CLOSE = CLOSE_INTERNAL  # as Deepgram: 1011 NET-0001
_AUTH_SCHEMES = ("token", "bearer")


@router.websocket("/v1/listen")
async def listen(ws: WebSocket) -> None:
    await ListenSession(ws, services_of(ws)).run()


@dataclass(frozen=True)
class _Outcome:
    """How the stream ended: why (the call's end reason), the close frame, and whether the client still hears the
    flush (the pending finals and the Metadata summary)."""

    end: CallEnd
    close_code: int | None = None
    close_reason: str = ""
    flush: bool = False


class ListenSession:
    def __init__(self, ws: WebSocket, services: Services) -> None:
        self.ws = ws
        self.services = services
        self.idle_timeout_s = services.settings.ingest.idle_timeout_s
        self.model = ModelInfo(services.scheduler.engine.name)
        self.peer = f"{ws.client.host}:{ws.client.port}" if ws.client else "?"
        self.request_id = new_call_id("dg")
        self.subprotocol: str | None = None
        self.options: ListenOptions | None = None
        self.decoder: AudioDecoder | None = None
        self.created = datetime.now(UTC)
        self.sha256 = hashlib.sha256()
        self.last_activity = time.monotonic()
        self.warnings: list[str] = []
        self._send_lock = asyncio.Lock()
        self._finalizing: set[int] = set()  # channels whose next final answers a Finalize
        self._speaker: dict[int, int] = {}  # the latest diarized speaker of each channel (for interim words)
        self._held: Held | None = None  # the call's key, held while it is live: revoking it ends the call

    # -- handshake -----------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            call = await self._open()
        except Refused as exc:
            await self._refuse(exc)
            return
        try:
            await self.ws.accept(subprotocol=self.subprotocol)
        except Exception:
            if self._held is not None:
                self._held.release()
            await call.close(CallEnd.DISCONNECTED)
            return
        outcome = _Outcome(CallEnd.SERVER_SHUTDOWN, 1001, "server shutting down")
        try:
            outcome = await self._serve(call)
        except Exception:
            log.exception("deepgram stream %s failed", call.id)
            outcome = _Outcome(CallEnd.INTERNAL_ERROR, CLOSE_INTERNAL, "internal error")
        finally:
            if self._held is not None:
                self._held.release()
            # The call is ended and stored whatever happened, even if this handler is cancelled.
            await call.close(outcome.end)
        if outcome.close_code is not None and self.ws.client_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(outcome.close_code, outcome.close_reason[:120]), 2.0)

    async def _open(self) -> LiveCall:
        """Authenticate, read the options and open the call: all before the handshake is answered."""
        offered = self._subprotocol_key()  # also picks the subprotocol to answer with
        secret = presented_key(self.ws) or offered
        if secret is None:
            raise Refused(401, "INVALID_AUTH", "missing API key: send Authorization: Token KEY")
        key = await self.services.authenticate(secret)
        if key is None:
            raise Refused(401, "INVALID_AUTH", "invalid API key")
        if not key.can("ingest"):
            raise Refused(403, "INSUFFICIENT_PERMISSIONS", f"a {key.role.value} key may not stream audio")
        try:
            options = parse_listen_query(self.ws.query_params.multi_items())
            metadata = parse_metadata(options.metadata)
        except (ListenError, MetadataError) as exc:
            raise Refused(400, "Bad Request", str(exc)) from None
        metadata.token = None
        if metadata.team and metadata.team != key.team:
            raise Refused(
                403, "INSUFFICIENT_PERMISSIONS", f"this key belongs to team {key.team!r}, not {metadata.team!r}"
            )
        self.options = options
        self.decoder = AudioDecoder(options)
        self.request_id = options.call_id or self.request_id
        if options.ignored:
            log.info(
                "deepgram stream %s: parameters without effect here: %s", self.request_id, ", ".join(options.ignored)
            )
        return await self._open_call(key, options, metadata)

    async def _open_call(self, key: ApiKey, options: ListenOptions, metadata: CallMetadata) -> LiveCall:
        compat = self.services.settings.compat
        try:
            call = await self.services.calls.open(
                self.request_id,
                key.team,
                "deepgram",
                metadata,
                options.channel_specs(compat),
                consent_default=Consent(compat.consent),  # these clients never say; the server's setting does
                subscribe=True,
            )
        except CallRefused as exc:
            raise refusal(exc) from None
        self._held = self.services.sessions.hold(key.id, lambda: call.end(CallEnd.KEY_REVOKED))
        for index, spec in call.channels.items():
            if not call.transcribing(index):
                self.warnings.append(
                    f"channel {index} ({spec.speaker}) is not transcribed: its speakers have not "
                    f"consented (consent policy {self.services.settings.consent_policy.value}); set rep_consent and "
                    "customer_consent"
                )
        for warning in self.warnings:
            log.warning("deepgram stream %s: %s", self.request_id, warning)
        return call

    def _subprotocol_key(self) -> str | None:
        """Deepgram's browser form: ``Sec-WebSocket-Protocol: token, KEY`` (or ``bearer, TOKEN``); the server
        answers with the scheme, as a browser requires one of its offers back."""
        offered = [p.strip() for p in self.ws.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
        for i, name in enumerate(offered[:-1]):
            if name.lower() in _AUTH_SCHEMES:
                self.subprotocol = name
                return offered[i + 1]
        return None

    async def _refuse(self, refused: Refused) -> None:
        """Refuse the handshake with an HTTP status, as Deepgram does (the SDK raises it as ``ApiError``); where the
        server cannot answer a websocket request with HTTP, accept and close with 1008 and the reason."""
        log.warning("deepgram stream from %s refused: %d %s", self.peer, refused.status, refused.message)
        if "websocket.http.response" in self.ws.scope.get("extensions", {}):
            body, headers = refused.body(self.request_id), refused.response_headers(self.request_id)
            with contextlib.suppress(Exception):
                await self.ws.send_denial_response(JSONResponse(body, refused.status, headers=headers))
            return
        with contextlib.suppress(Exception):
            await self.ws.accept(subprotocol=self.subprotocol)
            await self.ws.close(refused.close_code, f"{refused.status} {refused.message}"[:120])

    # -- the stream ----------------------------------------------------------------------------------

    async def _serve(self, call: LiveCall) -> _Outcome:
        sender = asyncio.create_task(self._send_events(call), name=f"dg-{call.id}-out")
        tail: asyncio.Task[None] | None = None
        try:
            outcome = await self._read(call)
            if outcome.end is not CallEnd.DISCONNECTED:
                tail = asyncio.create_task(self._read_after_close(), name=f"dg-{call.id}-tail")
            # End the call: its pending finals come out of events() before call_ended, then the sender stops.
            try:
                await asyncio.shield(call.end(outcome.end))
                await asyncio.wait_for(asyncio.shield(sender), 10.0)
            except (TimeoutError, SubscriberTooSlow):
                log.warning("deepgram stream %s: not every result reached the client", call.id)
            if outcome.flush:
                summary = metadata_message(
                    self.request_id,
                    self.created,
                    self.decoder.duration if self.decoder else 0.0,
                    self.options.channels if self.options else 1,
                    self.sha256.hexdigest(),
                    self.model,
                    self.warnings,
                )
                await self._send(summary)
            return outcome
        finally:
            sender.cancel()
            if tail is not None:
                tail.cancel()

    async def _read(self, call: LiveCall) -> _Outcome:
        """The client's frames, until CloseStream, a close, an idle timeout, audio that cannot be decoded, or the
        server's end of the call (shutdown, storage failure: the client gets the finals, then that close code)."""
        watch = EndWatch()
        watch.follow(call)
        try:
            return await self._frames(call, watch)
        except ServerEnded as exc:
            log.info("deepgram stream %s: %s", call.id, exc.close_reason)
            return _Outcome(exc.reason, exc.close_code, exc.close_reason, flush=True)
        finally:
            watch.close()

    async def _frames(self, call: LiveCall, watch: EndWatch) -> _Outcome:
        while True:
            timeout = self.last_activity + self.idle_timeout_s - time.monotonic()
            try:
                frame = await watch.next(self.ws.receive(), max(0.0, timeout))
            except TimeoutError:
                return _Outcome(
                    CallEnd.IDLE_TIMEOUT,
                    _IDLE_CLOSE,
                    f"NET-0001: no audio or KeepAlive for {self.idle_timeout_s:g} s",
                    flush=True,
                )
            if frame["type"] == "websocket.disconnect":
                return _Outcome(CallEnd.DISCONNECTED)
            data = frame.get("bytes")
            if data is not None:
                if not data:  # an empty frame closes the stream in Deepgram's older protocol
                    return _Outcome(CallEnd.STOP, CLOSE_NORMAL, flush=True)
                try:
                    self._push(call, data)
                except AudioError as exc:
                    await call.notice("invalid_payload", str(exc))
                    log.warning("deepgram stream %s: %s", call.id, exc)
                    return _Outcome(CallEnd.PROTOCOL_ERROR, CLOSE_POLICY, f"DATA-0000: {exc}")
                continue
            text = frame.get("text")
            if text is not None and await self._control(call, text):
                return _Outcome(CallEnd.STOP, CLOSE_NORMAL, flush=True)

    def _push(self, call: LiveCall, data: bytes) -> None:
        assert self.decoder is not None
        channels = self.decoder.decode(data)
        self.sha256.update(data)
        self.last_activity = time.monotonic()
        rate = self.decoder.call_rate
        for index, pcm in enumerate(channels):
            call.push(Audio(index, pcm, rate))

    async def _control(self, call: LiveCall, text: str) -> bool:
        """A text frame; True when it is CloseStream. What cannot be used gets an Error message: the stream goes on."""
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            return await self._complain(call, f"a text message must be JSON ({exc.msg})", "SchemaError", text)
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "KeepAlive":
            self.last_activity = time.monotonic()
        elif kind == "Finalize":
            channel = message.get("channel")
            if channel is not None and (not isinstance(channel, int) or channel not in call.channels):
                return await self._complain(call, f"Finalize: no channel {channel!r}", "SchemaError", text)
            self.last_activity = time.monotonic()
            self._finalize(call, channel)
        elif kind == "CloseStream":
            return True
        elif kind == "Configure":
            await self._send(
                {
                    "type": "ConfigureFailure",
                    "request_id": self.request_id,
                    "code": "CONFIGURE_KEYTERMS_NOT_SUPPORTED",
                    "description": "this server takes keyterms when the stream opens (keyterm=...), not mid-stream",
                }
            )
        else:
            what = f"unknown message type {kind!r}" if kind else "a text message must be an object with a type"
            return await self._complain(call, f"{what}: use KeepAlive, Finalize or CloseStream", "SchemaError", text)
        return False

    async def _complain(self, call: LiveCall, description: str, variant: ErrorVariant, text: str) -> bool:
        log.warning("deepgram stream %s: %s", call.id, description)
        await call.notice("malformed_message", description)
        await self._send(error_message(description, variant, text))
        return False

    def _finalize(self, call: LiveCall, channel: int | None) -> None:
        """Finalise now (all channels, or one); the next final of each such channel is marked ``from_finalize``."""
        targets = list(call.channels) if channel is None else [channel]
        self._finalizing.update(index for index in targets if call.transcribing(index))
        call.finalize(channel)

    async def _read_after_close(self) -> None:
        """While the stream flushes: audio is answered with an Error (once), a close is noticed."""
        warned = False
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                return
            if frame.get("bytes") and not warned:
                warned = True
                description = "audio after CloseStream is ignored: the stream is closing"
                await self._send(error_message(description, "DataError"))

    # -- messages out --------------------------------------------------------------------------------

    async def _send_events(self, call: LiveCall) -> None:
        try:
            async for event in call.events():
                message = self._message(event)
                if message is not None:
                    await self._send(message)
        except SubscriberTooSlow:
            log.warning("deepgram stream %s: the client reads too slowly; closing", call.id)
            with contextlib.suppress(Exception):
                await self.ws.close(CLOSE_INTERNAL, "the client did not read results fast enough")

    def _message(self, event: pb.Event) -> dict[str, Any] | None:
        options = self.options
        assert options is not None
        channels = options.channels if options.multichannel else 1
        kind = event.WhichOneof("payload")
        if kind == "transcript":
            t = event.transcript
            from_finalize = False
            if t.is_final and not t.speech_final and t.channel in self._finalizing:
                self._finalizing.discard(t.channel)
                from_finalize = True
            message = results_message(
                t,
                options,
                channels,
                self.request_id,
                self.model,
                from_finalize=from_finalize,
                default_speaker=self._speaker.get(t.channel, 0),
            )
            labelled = [n for n in (speaker_number(w.speaker) for w in t.words) if n is not None]
            if labelled:
                self._speaker[t.channel] = labelled[-1]
            return message
        if kind == "speech_started":
            # An utterance that starts after a Finalize: that Finalize had nothing left to finalise.
            self._finalizing.discard(event.speech_started.channel)
            return speech_started_message(event.speech_started, channels) if options.vad_events else None
        if kind == "utterance_end":
            return utterance_end_message(event.utterance_end, channels)
        return None

    async def _send(self, message: dict[str, Any]) -> None:
        """One message; a client that is gone is not an error here (the reader sees the close)."""
        if self.ws.application_state != WebSocketState.CONNECTED:
            return
        async with self._send_lock:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await self.ws.send_text(json.dumps(message, separators=(",", ":")))
