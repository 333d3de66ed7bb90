"""One typed settings object, read from flags, environment (``MEDIA_SERVER_*``) and a TOML/JSON file.

Precedence, highest first: command-line flags, environment variables, the ``--config`` file,
the defaults below. Nested sections in the environment use ``__``:
``MEDIA_SERVER_ASR__MODEL=small.en``.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError


class ConsentPolicy(StrEnum):
    ALL_PARTY = "all_party"  # every participant must have granted consent to be transcribed
    ONE_PARTY = "one_party"  # only an explicit "denied" keeps a participant out


class AsrSettings(BaseModel):
    model: str | None = Field(
        default=None,
        description="Whisper model name (downloaded) or a local CTranslate2 directory; "
        "unset or not downloadable: the bundled tiny.en weights",
    )
    final_model: str | None = Field(
        default=None,
        description="a second Whisper model for finals only (e.g. base: better finals, about a third more CPU); "
        "interims stay on model",
    )
    backend: Literal["ctranslate2", "torch"] = Field(
        "ctranslate2", description="ctranslate2 (default), or torch where CTranslate2's CUDA build is missing"
    )
    device: str = "cpu"
    compute_type: str = "int8"
    final_beam_size: int = Field(
        5, ge=1, le=10, description="beam search for finals (1: greedy, as interims); CTranslate2 backend"
    )
    workers: int = Field(
        0, ge=0, description="decode threads sharing the model; 0: one per core (up to 4) on a CPU, 1 on CUDA"
    )
    cpu_threads: int = Field(0, ge=0, description="threads per decode; 0: the cores divided among the workers")
    download_root: str | None = None
    max_batch: int = Field(
        0, ge=0, description="utterances decoded in one model call; 0: 2 on a CPU (measured best), 16 on CUDA"
    )
    max_wait_ms: int = 10
    interim_max_age_ms: int = 1000


class StreamingSettings(BaseModel):
    endpointing_ms: int = Field(500, ge=100, le=5000, description="silence that ends an utterance")
    utterance_end_ms: int = Field(1000, ge=0, le=10000, description="silence before an utterance_end event")
    keyterms: list[str] = Field(default_factory=list, description="names and phrases every call favours")
    interim_results: bool = True
    interim_interval_ms: int = Field(1000, ge=200, le=5000)
    max_utterance_s: float = Field(
        14.0, ge=2.0, le=15.0, description="a final at least this often in a turn without a pause (cut at a word)"
    )
    prompt_previous: bool = Field(False, description="prompt the decoder with the channel's previous final")
    prompt_continuation: bool = Field(
        True, description="prompt a long turn's continuation, after a cut, with the turn's words before the cut"
    )
    batch_join_ms: int = Field(
        2000,
        ge=0,
        le=10000,
        description="recordings (files, uploads): shorter pauses are decoded with the speech around them; "
        "0 decodes each utterance alone, as a live call",
    )
    batch_max_utterance_s: float = Field(
        28.0, ge=2.0, le=28.0, description="recordings: a cut at least this often (Whisper's 30 s window)"
    )


class VadSettings(BaseModel):
    model_path: str | None = None
    threshold: float = Field(0.5, gt=0.0, lt=1.0)
    batch_wait_ms: int = Field(
        20,
        ge=0,
        le=100,
        description="how long a live stream's audio may wait to be scored in one run with other streams' "
        "(Silero costs less than half per chunk in batches of eight); it delays hearing a pause by at most "
        "this much. 0: each stream scored as its audio comes",
    )


class SourceLimits(BaseModel):
    """Calls at once per ingest path that has no limit of its own (SIPREC has ``sip.max_calls``, WHIP
    ``whip.max_sessions``, gRPC and Riva ``grpc.max_streams``); past it the path refuses in its own way (websocket
    close 1013, HTTP 503 with Retry-After, AudioSocket hang-up)."""

    twilio: int = Field(500, ge=0)
    telnyx: int = Field(500, ge=0)
    l16: int = Field(500, ge=0)
    deepgram: int = Field(500, ge=0)
    audiosocket: int = Field(500, ge=0)


class PacingSettings(BaseModel):
    """Live audio no faster than real time (``calls/pacing.py``): beyond a burst, a stream's reads wait (its sender
    slows down); further ahead than ``max_ahead_s``, the call ends as ``too_fast``."""

    enabled: bool = Field(True, description="pace live calls (Riva Recognize and transcribe are batch work, unpaced)")
    burst_s: float = Field(5.0, ge=0, description="audio a stream may send ahead of real time (jitter, catch-up)")
    max_ahead_s: float = Field(
        30.0,
        ge=0,
        description="a call further ahead of real time than its burst and this is ended (too_fast); 0: "
        "ended as soon as its burst is spent, rather than paced",
    )
    max_held_s: float = Field(
        15.0,
        ge=0,
        description="a call held back to real time at every read for this long without a break is ended (too_fast: "
        "its sender keeps sending faster); 0: never. Keep it under the websockets' keepalive (20 s)",
    )


class CallsSettings(BaseModel):
    """Limits that hold for every call, whatever protocol carries it."""

    max_live: int = Field(
        1000, ge=1, description="calls at once on this server, every ingest path together; more are refused"
    )
    max_by_source: SourceLimits = SourceLimits()
    retry_after_s: int = Field(5, ge=1, description="the retry delay a refused client is given")
    drain_timeout_s: float = Field(
        10.0, ge=0, description="on SIGTERM, how long live calls' open utterances may take to be finalised"
    )
    pacing: PacingSettings = PacingSettings()


class IngestSettings(BaseModel):
    max_frame_bytes: int = Field(64 * 1024, ge=1024, description="largest websocket frame accepted")
    idle_timeout_s: float = Field(30.0, gt=0, description="a call with no audio for this long is ended")
    start_timeout_s: float = Field(10.0, gt=0, description="time allowed for the first (start) message")
    reorder_window: int = Field(16, ge=0, description="Telnyx media frames held back to restore order")
    max_file_mb: int = Field(
        500, ge=1, description="the largest recording a request may carry or fetch (POST /v1/listen, POST /v1/calls)"
    )
    max_file_minutes: float = Field(
        240.0, gt=0, description="the longest recording they take, decoded (a small file can hold hours of audio)"
    )


_TRANSPORTS: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp")
_CODECS: tuple[Literal["PCMU", "PCMA", "G722", "opus"], ...] = ("PCMU", "PCMA", "G722", "opus")


class SipSettings(BaseModel):
    """The SIPREC recording server (RFC 7866): SBCs and PBXs fork calls to it over SIP, media over RTP."""

    enabled: bool = Field(False, description="listen for SIPREC sessions")
    host: str = Field("0.0.0.0", description="address the SIP transports bind to")
    port: int = Field(5060, ge=0, le=65535, description="SIP over UDP and TCP; 0: any free port")
    transports: list[Literal["udp", "tcp"]] = Field(default_factory=lambda: list(_TRANSPORTS))
    tls_port: int = Field(5061, ge=0, le=65535, description="SIP over TLS, when tls_cert and tls_key are set")
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = Field(
        None,
        description="SIP over TLS: SBCs must present a certificate signed by this CA (mutual TLS); unset: not asked",
    )
    advertised_address: str | None = Field(
        None, description="address written in Contact and SDP (behind NAT); default: the address a request came to"
    )
    allow: list[str] = Field(
        default_factory=list,
        description="source addresses or networks (CIDR) allowed to record and to send RTP (list media relays too: "
        "RTP is taken only from these, the SDP's c= addresses and the SIP source); empty: none (0.0.0.0/0: any)",
    )
    team: str = Field("default", description="the team SIPREC calls belong to")
    consent: Literal["granted", "denied", "unknown"] = Field(
        "unknown",
        description="consent assumed for participants when the platform says nothing "
        "(granted where the PBX or SBC announces the recording)",
    )
    rep_domains: list[str] = Field(
        default_factory=list,
        description="AOR domains of the team's own users: the participant whose AOR is in one of them is the rep",
    )
    rep_label: str | None = Field(
        None, description="else: the stream label that carries the rep; else the first participant is the rep"
    )
    max_calls: int = Field(200, ge=1, description="recording sessions at once; more get 503 with Retry-After")
    retry_after_s: int = Field(30, ge=1)
    session_expires_s: int = Field(1800, ge=90, description="RFC 4028 session interval offered when asked")
    codecs: list[Literal["PCMU", "PCMA", "G722", "opus"]] = Field(
        default_factory=lambda: list(_CODECS), description="accepted codecs, preferred first"
    )
    rtp_host: str | None = Field(None, description="address RTP ports bind to; default: host")
    rtp_port_min: int = Field(20000, ge=1024, le=65534)
    rtp_port_max: int = Field(30000, ge=1025, le=65535)
    rtp_timeout_s: float = Field(30.0, gt=0, description="a call with no RTP on any stream for this long is ended")
    jitter_ms: int = Field(60, ge=0, le=1000, description="how long the jitter buffer waits for a late packet")

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _check_networks(value)

    @model_validator(mode="after")
    def _consistent(self) -> SipSettings:
        if self.rtp_port_max - self.rtp_port_min < 2:
            raise ValueError("rtp_port_max must be at least rtp_port_min + 2")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("sip.tls_client_ca needs SIP over TLS (tls_cert and tls_key)")
        return self


class AudioSocketSettings(BaseModel):
    """Asterisk AudioSocket (TCP): ``AudioSocket(uuid,host:port)`` in the dialplan, or ARI externalMedia."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(9092, ge=0, le=65535, description="0: any free port")
    allow: list[str] = Field(
        default_factory=list, description="source addresses or networks (CIDR); empty: none (0.0.0.0/0 and ::/0: any)"
    )
    team: str = Field("default", description="the team AudioSocket calls belong to")
    consent: Literal["granted", "denied", "unknown"] = Field(
        "unknown",
        description="consent assumed for participants when the platform says nothing "
        "(granted where the PBX or SBC announces the recording)",
    )
    speaker: Literal["mixed", "rep", "customer"] = Field(
        "mixed", description="whose voice the socket carries (AudioSocket sends one channel)"
    )

    @field_validator("allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        return _check_networks(value)


def _check_networks(value: list[str]) -> list[str]:
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"{entry!r} is not an address or a network like 10.0.0.0/8") from None
    return value


class WhipSettings(BaseModel):
    """WebRTC ingest over WHIP (RFC 9725) at ``/v1/ingest/whip``."""

    max_sessions: int = Field(200, ge=0, description="WHIP sessions at once; more get 503 with Retry-After")
    retry_after_s: int = Field(5, ge=1)


class IceServer(BaseModel):
    """A STUN or TURN server, as in WebRTC's ``RTCIceServer``."""

    urls: list[str] = Field(min_length=1, description="stun:HOST:PORT, turn:HOST:PORT?transport=udp, turns:...")
    username: str = ""
    credential: str = ""

    @field_validator("urls")
    @classmethod
    def _schemes(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise ValueError(f"an ICE server URL starts with stun:, turn: or turns: (got {url!r})")
        return urls


class WebRtcSettings(BaseModel):
    """WebRTC peers of the server (WHIP ingest and listen-in)."""

    ice_servers: list[IceServer] = Field(
        default_factory=list,
        description="STUN/TURN servers the server gathers candidates with, and offers to WHIP clients (Link headers)",
    )


class InsightsSettings(BaseModel):
    """Trackers, named entities and coaching cues (the team's configuration says what to track)."""

    enabled: bool = Field(True, description="off: keyterm hits only, no spaCy pipeline loaded")
    spacy_model: str | None = Field(
        None, description="a spaCy pipeline name or path; unset or not loadable: the bundled small English one"
    )


class DiarizationSettings(BaseModel):
    """Who is speaking on mixed channels (both parties on one channel): online diarization, refined at the end."""

    enabled: bool = True
    max_speakers: int = Field(2, ge=1, le=8, description="sales calls: the rep and the customer")
    weights_path: str | None = Field(
        None,
        description="a speaker-encoder checkpoint (resemblyzer's pretrained.pt, or an .npz of its tensors); unset: the"
        " converted copy bundled with the package",
    )


class ListenSettings(BaseModel):
    """Listen-in: managers hear live calls over WebRTC (``POST /v1/calls/{id}/listen``)."""

    max_sessions: int = Field(50, ge=0, description="listen-ins at once; more get 503 with Retry-After")
    max_delay_ms: int = Field(250, ge=40, le=2000, description="audio older than this is skipped to stay live")


class HttpSettings(BaseModel):
    """The HTTP and websocket listener's own limits (``media_server/connections.py``)."""

    header_timeout_s: float = Field(
        10.0, gt=0, le=300, description="a request's headers must arrive within this (slow or half-sent: closed)"
    )
    keepalive_timeout_s: float = Field(5.0, gt=0, le=300, description="an idle keep-alive connection is closed after")
    max_connections: int = Field(
        4096, ge=1, description="open HTTP and websocket connections at once; more get 503 and are closed"
    )


class MetricsSettings(BaseModel):
    """``GET /metrics`` (Prometheus text format, ``media_server/metrics.py``)."""

    token: SecretStr | None = Field(
        None, description="a bearer token for scrapers (Authorization: Bearer ...), besides any admin API key"
    )
    public: bool = Field(False, description="answer without a token (a scraper on a private network)")


class DashboardSettings(BaseModel):
    """The web dashboard, served at ``/``."""

    enabled: bool = True
    directory: Path | None = Field(None, description="where its files are; default: the dashboard/ folder")


class GrpcSettings(BaseModel):
    """The gRPC API (``media_server.v1.MediaServer``) and the Riva-compatible service, in the same process."""

    enabled: bool = True
    host: str | None = Field(None, description="address gRPC binds to; default: the HTTP host")
    port: int = Field(50051, ge=0, le=65535, description="0: any free port")
    max_streams: int = Field(
        500, ge=1, description="concurrent streaming calls (StreamCall, StreamingRecognize) before RESOURCE_EXHAUSTED"
    )
    max_message_bytes: int = Field(4 * 1024 * 1024, ge=64 * 1024, description="largest request message")
    reflection: bool = Field(
        False, description="server reflection (grpcurl without .proto files): lists every service to anyone, so off"
    )


class TlsSettings(BaseModel):
    """HTTPS and WSS (the HTTP listener) and gRPC over TLS (our API and the Riva-compatible service), on one
    certificate (``media-server serve --tls-cert FILE --tls-key FILE``). Unset: plain HTTP and gRPC (behind a proxy
    that terminates TLS)."""

    cert: Path | None = Field(None, description="PEM certificate chain (the server's certificate first)")
    key: Path | None = Field(None, description="PEM private key of cert")
    client_ca: Path | None = Field(
        None,
        description="gRPC: clients must present a certificate signed by this CA (mutual TLS); HTTPS does not ask "
        "(browsers and telephony platforms have none)",
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsSettings:
        if (self.cert is None) != (self.key is None):
            raise ValueError("tls.cert and tls.key go together")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert is not None


class CompatSettings(BaseModel):
    """Streams of the Deepgram- and Riva-compatible APIs (``/v1/listen``, ``StreamingRecognize``): their clients ask
    for a transcript of audio they hold and say nothing about consent or who is speaking."""

    consent: Literal["granted", "denied", "unknown"] = Field(
        "granted",
        description="consent assumed for the speakers of a Deepgram- or Riva-compatible stream when the stream says "
        "nothing (these clients ask for a transcript of audio they hold); unknown: the consent policy decides",
    )
    speaker: Literal["mixed", "rep", "customer"] = Field(
        "mixed",
        description="the role of a mono stream that neither declares its speaker nor asks for diarization: one "
        "voice, never diarized (mixed: it may be either party, so both must consent; rep or customer: that party's "
        "consent is enough). A stream that asks for diarization or declares speaker=mixed is diarized",
    )
    fetch_allow: list[str] = Field(
        default_factory=list,
        description='the hosts a pre-recorded request\'s {"url"} may be fetched from: host names '
        "(media.example.com) or CIDRs (203.0.113.0/24); empty: no fetching. A listed name or CIDR may be private "
        "or loopback; nothing else is fetched",
    )
    fetch_timeout_s: float = Field(60.0, gt=0, le=3600, description="the longest a url's fetch may take")

    @field_validator("fetch_allow")
    @classmethod
    def _fetch_allow(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"compat.fetch_allow: {entry!r} is not a CIDR") from None
        return [e.strip().lower() for e in value if e.strip()]


class EventSettings(BaseModel):
    """How events reach subscribers: in this process (``memory``), or through Redis (``redis``) to the subscribers
    of every server that shares it (and the database)."""

    bus: Literal["memory", "redis"] = Field(
        "memory", description="memory: this server's subscribers only; redis: every server's (needs redis_url)"
    )
    redis_url: str | None = Field(None, description="redis://[:password@]host:6379/0 (bus = redis)")
    redis_ca_file: Path | None = Field(
        None, description="rediss://: the CA Redis's certificate is verified against (else the system's roots)"
    )
    redis_cert_file: Path | None = Field(None, description="rediss://: a client certificate (Redis tls-auth-clients)")
    redis_key_file: Path | None = Field(None, description="rediss://: the client certificate's key")
    redis_prefix: str = Field(
        "media-server:", max_length=100, description="Redis keys start with this (several deployments on one Redis)"
    )
    window_s: float = Field(
        600.0,
        ge=10,
        description="bus = redis: how long Redis keeps events, so that a subscriber resumes with after= on any "
        "server in their order; older ones are resumed from the store",
    )
    replay_max: int = Field(
        10_000, ge=10, description="events a subscriber resuming with after= is sent from the store at most"
    )
    subscriber_queue: int = Field(1000, ge=10, description="events queued for a subscriber before it is dropped")

    @model_validator(mode="after")
    def _redis(self) -> EventSettings:
        if self.bus == "redis" and not self.redis_url:
            raise ValueError("events.bus = redis needs events.redis_url (redis://host:6379/0)")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("events.redis_url must be a redis://, rediss:// or unix:// URL")
        tls = {"ssl_ca_certs": self.redis_ca_file, "ssl_certfile": self.redis_cert_file}
        tls["ssl_keyfile"] = self.redis_key_file
        if any(tls.values()):  # into the URL's query (redis-py's names), which every Redis client is made from
            if not (self.redis_url or "").startswith("rediss://"):
                raise ValueError("events.redis_ca_file, redis_cert_file and redis_key_file need a rediss:// URL")
            assert self.redis_url is not None
            url = urlsplit(self.redis_url)
            query = dict(parse_qsl(url.query))
            query.update({name: str(path) for name, path in tls.items() if path is not None})
            self.redis_url = urlunsplit(url._replace(query=urlencode(query)))
        return self


class ClusterSettings(BaseModel):
    """Several servers sharing one database (PostgreSQL) and one Redis (``events.bus = "redis"``): leases, live
    calls across servers, requests about another server's call. Off for one server on SQLite."""

    lease_s: float = Field(
        15.0,
        ge=1,
        le=600,
        description="a server that has not renewed its lease for this long is taken over: another one closes its "
        "live calls as interrupted (node_lost)",
    )
    advertise_url: str | None = Field(
        None,
        description="where the other servers reach this one's HTTP API (requests about its calls); default: "
        "http://<host>:<port> (https:// with tls.cert), with this machine's name for 0.0.0.0",
    )
    live_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often this server shows its live calls to the others (/v1/live)"
    )


class WorkersSettings(BaseModel):
    """Recognition workers (``media-server worker``, ``media_server/workers``): the decode scheduler in processes of
    their own, on other machines. Without ``urls`` the server decodes in-process (the default)."""

    urls: list[str] = Field(
        default_factory=list,
        description="host:port of each worker a media node sends decode work to; empty: in-process",
    )
    key: str | None = Field(
        None, description="the shared key: nodes send it (x-worker-key metadata), workers refuse any other"
    )
    key_file: Path | None = Field(None, description="a file whose first line is the key (instead of key)")
    host: str = Field("127.0.0.1", description="media-server worker: the address it binds to")
    port: int = Field(50061, ge=0, le=65535, description="media-server worker: its port (0: any free port)")
    tls_cert: Path | None = Field(
        None, description="TLS: a worker's certificate (with tls_key, it serves TLS); a node's client certificate"
    )
    tls_key: Path | None = Field(None, description="the key of tls_cert")
    tls_ca: Path | None = Field(
        None,
        description="TLS: a node verifies workers against this CA (and speaks TLS to them); a worker requires "
        "nodes' client certificates signed by it (mutual TLS)",
    )
    wire_format: Literal["f32", "s16"] = Field(
        "f32",
        description="audio to workers as float32 PCM (transcripts as in-process) or 16-bit (half the bytes; rounding "
        "the resampled audio changes a word here and there)",
    )
    request_timeout_s: float = Field(
        30.0, gt=0, description="a decode a worker has not answered for this long is retried on another worker"
    )
    final_wait_s: float = Field(
        60.0, gt=0, description="how long a final waits for a reachable worker before its utterance is given up"
    )
    status_interval_s: float = Field(1.0, gt=0, description="how often a node asks each worker for its load")
    max_message_bytes: int = Field(16 * 1024 * 1024, ge=1024 * 1024, description="largest decode job (audio)")

    @model_validator(mode="after")
    def _key_given(self) -> WorkersSettings:
        if self.key and self.key_file:
            raise ValueError("workers: key or key_file, not both")
        if self.urls and not (self.key or self.key_file):
            raise ValueError("workers.urls needs the workers' shared key: workers.key or workers.key_file")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("workers.tls_cert and workers.tls_key go together")
        return self

    @property
    def tls(self) -> bool:
        """A node speaks TLS to its workers."""
        return self.tls_ca is not None or self.tls_cert is not None

    def shared_key(self) -> str | None:
        """The key, read from ``key_file`` where it is given there."""
        if self.key_file is not None:
            lines = self.key_file.read_text().splitlines()
            key = lines[0].strip() if lines else ""
            if not key:
                raise ValueError(f"workers.key_file {self.key_file} is empty")
            return key
        return self.key or None


class StoreSettings(BaseModel):
    """How calls are written as they go (``store/journal.py``)."""

    synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="SQLite: normal survives a crash of the server process, not a power cut; full survives both "
        "(each commit waits for the disk)",
    )
    commit_interval_ms: int = Field(
        0, ge=0, le=2000, description="wait this long after a commit to gather more events into the next one"
    )
    retry_for_s: float = Field(
        60.0, ge=1, description="while the store fails, how long events wait in memory before they are given up"
    )
    max_size_mb: float = Field(
        0.0, ge=0, description="SQLite: the database never grows past this; writes past it fail (0: no limit)"
    )
    purge_interval_s: float = Field(
        3600.0, gt=0, description="how often each team's retention is applied (also once at start)"
    )


class WebhookSettings(BaseModel):
    """Teams' webhooks (``POST /v1/webhooks``): where deliveries may go, how they are sent and retried."""

    allow_private: bool = Field(
        False,
        description="let webhooks reach loopback, private, link-local and other non-public addresses and the "
        "server's own (refused by default: nothing on the server's network)",
    )
    allow: list[str] = Field(
        default_factory=list,
        description="exceptions to that refusal: CIDRs (10.1.2.0/24) the resolved address may be in, or host names "
        "(crm.internal.example) a webhook URL may name",
    )
    timeout_s: float = Field(10.0, gt=0, le=120, description="each delivery's connect and response timeout")
    max_attempts: int = Field(10, ge=1, le=50, description="attempts before a delivery is given up (failed)")
    backoff_s: float = Field(30.0, gt=0, description="wait before the first retry; doubled after each failure")
    backoff_max_s: float = Field(6 * 3600.0, gt=0, description="the longest wait between two attempts")
    poll_interval_s: float = Field(2.0, gt=0, le=60, description="how often the outbox is looked at for due deliveries")

    @field_validator("allow")
    @classmethod
    def _allow(cls, value: list[str]) -> list[str]:
        for entry in value:
            if "/" in entry:
                try:
                    ipaddress.ip_network(entry, strict=False)
                except ValueError:
                    raise ValueError(f"webhooks.allow: {entry!r} is not a CIDR") from None
        return [e.strip().lower() for e in value if e.strip()]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MEDIA_SERVER_", env_nested_delimiter="__", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./data")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite in data_dir")
    node_id: str | None = Field(
        default=None,
        max_length=64,
        description="this server's name in the store (who holds a live call); default: one made up once and kept "
        "in data_dir/node-id",
    )
    store: StoreSettings = StoreSettings()
    consent_policy: ConsentPolicy = ConsentPolicy.ALL_PARTY
    log_level: str = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line (logs.py)")
    metrics: MetricsSettings = MetricsSettings()
    asr: AsrSettings = AsrSettings()
    streaming: StreamingSettings = StreamingSettings()
    vad: VadSettings = VadSettings()
    calls: CallsSettings = CallsSettings()
    ingest: IngestSettings = IngestSettings()
    events: EventSettings = EventSettings()
    cluster: ClusterSettings = ClusterSettings()
    workers: WorkersSettings = WorkersSettings()
    sip: SipSettings = SipSettings()
    audiosocket: AudioSocketSettings = AudioSocketSettings()
    whip: WhipSettings = WhipSettings()
    listen: ListenSettings = ListenSettings()
    http: HttpSettings = HttpSettings()
    insights: InsightsSettings = InsightsSettings()
    diarization: DiarizationSettings = DiarizationSettings()
    webrtc: WebRtcSettings = WebRtcSettings()
    dashboard: DashboardSettings = DashboardSettings()
    grpc: GrpcSettings = GrpcSettings()
    compat: CompatSettings = CompatSettings()
    webhooks: WebhookSettings = WebhookSettings()
    tls: TlsSettings = TlsSettings()

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return value.lower()

    @field_validator("database_url")
    @classmethod
    def _database(cls, value: str | None) -> str | None:
        """SQLite (aiosqlite) or PostgreSQL (asyncpg); ``postgresql://``, ``postgres://`` and ``sqlite://`` name
        those drivers."""
        if not value:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("database_url must be a SQLAlchemy URL (postgresql+asyncpg://user@host/db)") from None
        backend, _, driver = url.drivername.partition("+")
        if backend in {"postgresql", "postgres"} and driver in {"", "asyncpg"}:
            return url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
        if backend == "sqlite" and driver in {"", "aiosqlite"}:
            return url.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
        raise ValueError(f"database_url: SQLite or PostgreSQL (postgresql+asyncpg://...), not {url.drivername}")

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'media_server.db').resolve()}"

    @property
    def shared(self) -> bool:
        """Several servers may share this one's database or bus: leases, live calls across servers."""
        return self.events.bus == "redis" or make_url(self.db_url).get_backend_name() == "postgresql"

    @property
    def advertised_url(self) -> str:
        if self.cluster.advertise_url:
            return self.cluster.advertise_url.rstrip("/")
        host = socket.gethostname() if self.host in ("0.0.0.0", "::", "") else self.host
        scheme = "https" if self.tls.enabled else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def db_url_for_logs(self) -> str:
        """The database URL without its password."""
        return make_url(self.db_url).render_as_string(hide_password=True)


def read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        data = tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a table of settings")
    return data


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Defaults < the config file < environment < explicit overrides (flags); ``None`` overrides are ignored."""
    file_values = read_config_file(config_file) if config_file else {}
    env_values = Settings().model_dump(exclude_unset=True)  # only what the environment set
    merged = _deep_merge(_deep_merge(file_values, env_values), {k: v for k, v in overrides.items() if v is not None})
    return Settings.model_validate(merged)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
