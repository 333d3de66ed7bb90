"""TLS everywhere: HTTPS and WSS, gRPC (our API and the Riva-compatible service, mutual TLS), SIP over TLS with
client certificates, the links to recognition workers, Redis and PostgreSQL; and the documented reverse proxy
(deploy/nginx/media-server.conf) in front of a plain server.

A throwaway CA (made with ``cryptography``) signs the server's certificate (localhost, 127.0.0.1) and a client's;
a second, unrelated CA signs a rogue client. Every client verifies the server against the test CA: real clients
(httpx, websockets, grpcio, Riva's and Deepgram's SDKs, redis-py, asyncpg through the store), never unverified.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.client import connect

from media_server.client.stream import stream_call
from media_server.config import Settings, WorkersSettings
from media_server.v1 import api_pb2, api_pb2_grpc, worker_pb2_grpc
from media_server.v1 import worker_pb2 as worker_pb
from media_server.workers.remote import RemoteScheduler
from models.asr.engine import DecodeRequest
from models.audio import int16_to_float32, resample
from tests.conftest import BIN, ROOT, Server, _missing, _postgres_binary, create_key, free_port
from tests.speech import Utterance, normalise, program, stereo, tel8k

pytestmark = pytest.mark.e2e

WORKER_KEY = "tls-worker-key-" + uuid.uuid4().hex


# -- a throwaway PKI -----------------------------------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_ca: Path  # an unrelated CA
    rogue_cert: Path  # a client certificate it signed
    rogue_key: Path

    def client_context(self, with_cert: bool = False) -> ssl.SSLContext:
        """What a careful client does: verify the server (chain and name) against the test CA."""
        context = ssl.create_default_context(cafile=str(self.ca))
        if with_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def grpc_credentials(self, with_cert: bool = False) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.client_key.read_bytes() if with_cert else None,
            certificate_chain=self.client_cert.read_bytes() if with_cert else None,
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def _ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    common_name: str, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], server: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usages = (
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        if server
        else [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[1].public_key()), critical=False)
    )
    if server:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca[1], hashes.SHA256()), key


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, rogue = _ca("media-server test CA"), _ca("someone else's CA")
    ca_path = directory / "ca.crt"
    ca_path.write_bytes(ca[0].public_bytes(serialization.Encoding.PEM))
    rogue_ca_path = directory / "rogue-ca.crt"
    rogue_ca_path.write_bytes(rogue[0].public_bytes(serialization.Encoding.PEM))
    server_cert, server_key = _write(directory, "server", *_leaf("localhost", ca, server=True))
    client_cert, client_key = _write(directory, "client", *_leaf("sbc.example", ca, server=False))
    rogue_cert, rogue_key = _write(directory, "rogue", *_leaf("sbc.example", rogue, server=False))
    return Pki(ca_path, server_cert, server_key, client_cert, client_key, rogue_ca_path, rogue_cert, rogue_key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


# -- a server with TLS on every listener ---------------------------------------------------------------------------


@dataclass
class TlsServer:
    url: str  # https://
    ws_url: str  # wss://
    grpc_target: str
    sip_tls_port: int
    log_path: Path
    keys: dict[str, str]
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_udp_tcp_port() -> int:
    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsServer]:
    """``media-server serve --tls-cert --tls-key``, gRPC clients' certificates required (``tls.client_ca``), SIP
    over TLS requiring SBC certificates (``sip.tls_client_ca``)."""
    data_dir = tmp_path_factory.mktemp("tls-server")
    grpc_port, sip_port, sip_tls_port = free_port(), _free_udp_tcp_port(), free_port()
    env = {
        **os.environ,
        "MEDIA_SERVER_LOG_LEVEL": "info",
        "MEDIA_SERVER_GRPC__PORT": str(grpc_port),
        "MEDIA_SERVER_TLS__CLIENT_CA": str(pki.ca),
        "MEDIA_SERVER_SIP__ENABLED": "true",
        "MEDIA_SERVER_SIP__HOST": "127.0.0.1",
        "MEDIA_SERVER_SIP__PORT": str(sip_port),
        "MEDIA_SERVER_SIP__TLS_PORT": str(sip_tls_port),
        "MEDIA_SERVER_SIP__TLS_CERT": str(pki.server_cert),
        "MEDIA_SERVER_SIP__TLS_KEY": str(pki.server_key),
        "MEDIA_SERVER_SIP__TLS_CLIENT_CA": str(pki.ca),
        "MEDIA_SERVER_SIP__RTP_PORT_MIN": "35000",
        "MEDIA_SERVER_SIP__RTP_PORT_MAX": "35998",
        "MEDIA_SERVER_SIP__ALLOW": '["127.0.0.1/32"]',
        "MEDIA_SERVER_SIP__TEAM": "acme",
    }
    keys = {role: create_key(data_dir, "acme", role, env) for role in ("admin", "ingest")}
    port = free_port()
    log_path = data_dir / "server.log"
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)]
    process = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--data-dir", str(data_dir), *tls],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    url = f"https://localhost:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1, verify=pki.client_context()).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"server did not start:\n{log_path.read_text()}")
        time.sleep(0.2)
    server = TlsServer(url, f"wss://localhost:{port}", f"localhost:{grpc_port}", sip_tls_port, log_path, keys, process)
    yield server
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def _utterances() -> list[Utterance]:
    return tel8k()[:1]


def _words(text: str) -> set[str]:
    return set(normalise(text).split())


# -- HTTPS and WSS -------------------------------------------------------------------------------------------------


def test_https_is_served_with_the_configured_certificate(tls_server: TlsServer, pki: Pki) -> None:
    headers = {"Authorization": f"Bearer {tls_server.keys['admin']}"}
    with httpx.Client(base_url=tls_server.url, verify=pki.client_context(), headers=headers, timeout=10) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/v1/calls").status_code == 200
    # The certificate is the test CA's: a client that trusts only another CA refuses it, and plain HTTP gets nothing.
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{tls_server.url}/health", verify=ssl.create_default_context(cafile=str(pki.rogue_ca)))
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_server.url.replace("https://", "http://") + "/health", timeout=5)


async def test_a_call_streamed_over_wss_is_transcribed_and_its_events_come_over_wss(
    tls_server: TlsServer, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    utterances = _utterances()
    call_id = "CA" + uuid.uuid4().hex
    events: list[dict[str, Any]] = []

    async def subscribe() -> None:
        headers = {"Authorization": f"Bearer {tls_server.keys['admin']}"}
        url = f"{tls_server.ws_url}/v1/calls/{call_id}/events"
        async with connect(url, ssl=pki.client_context(), additional_headers=headers) as ws:
            async for raw in ws:
                events.append(json.loads(raw))
                if events[-1]["type"] == "call_ended":
                    return

    subscriber = asyncio.create_task(subscribe())
    await asyncio.sleep(0.5)
    # The CLI's streaming client (websockets' default context) trusts what SSL_CERT_FILE names, as OpenSSL does.
    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    rep = program(utterances)
    metadata = {"repConsent": "granted", "customerConsent": "granted"}
    silent = program([Utterance(u.id, "", np.zeros_like(u.pcm), u.sample_rate) for u in utterances])
    result = await stream_call(
        stereo(rep, silent), tls_server.ws_url, "twilio", tls_server.keys["ingest"], call_id=call_id, metadata=metadata
    )
    assert result.close_code in (1000, None)
    await asyncio.wait_for(subscriber, 60)
    finals = [e["transcript"]["text"] for e in events if e["type"] == "transcript" and e["transcript"]["isFinal"]]
    heard = _words(" ".join(finals))
    assert len(heard & _words(utterances[0].ref)) >= len(_words(utterances[0].ref)) // 2, events


# -- gRPC: our API and the Riva-compatible service, mutual TLS -----------------------------------------------------


async def test_the_grpc_api_needs_a_client_certificate_signed_by_the_client_ca(tls_server: TlsServer, pki: Pki) -> None:
    key = (("authorization", f"Bearer {tls_server.keys['admin']}"),)
    async with grpc.aio.secure_channel(tls_server.grpc_target, pki.grpc_credentials(with_cert=True)) as channel:
        listed = await api_pb2_grpc.MediaServerStub(channel).ListCalls(  # type: ignore[no-untyped-call]
            api_pb2.ListCallsRequest(limit=5), metadata=key, timeout=10
        )
        assert listed is not None
    # Without a client certificate, with one of another CA, or in plain text: refused in the handshake.
    rogue = grpc.ssl_channel_credentials(pki.ca.read_bytes(), pki.rogue_key.read_bytes(), pki.rogue_cert.read_bytes())
    for credentials in (pki.grpc_credentials(with_cert=False), rogue, None):
        channel = (
            grpc.aio.secure_channel(tls_server.grpc_target, credentials)
            if credentials is not None
            else grpc.aio.insecure_channel(tls_server.grpc_target)
        )
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await api_pb2_grpc.MediaServerStub(channel).ListCalls(  # type: ignore[no-untyped-call]
                    api_pb2.ListCallsRequest(limit=5), metadata=key, timeout=5
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def _wav(path: Path, utterances: list[Utterance]) -> Path:
    speech = program(utterances)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(speech.sample_rate)
        out.writeframes(speech.pcm.astype("<i2").tobytes())
    return path


_RIVA_PEER = """
import json, sys
import grpc
import riva.client

target, key, wav, ca, cert, client_key = sys.argv[1:7]
auth = riva.client.Auth(
    uri=target, use_ssl=True, ssl_root_cert=ca, ssl_client_cert=cert or None, ssl_client_key=client_key or None,
    metadata_args=[["authorization", f"Bearer {key}"]],
)
asr = riva.client.ASRService(auth)
config = riva.client.RecognitionConfig(language_code="en-US", max_alternatives=1)
riva.client.add_audio_file_specs_to_config(config, wav)
try:
    response = asr.offline_recognize(open(wav, "rb").read(), config)
    print(json.dumps({"text": " ".join(r.alternatives[0].transcript for r in response.results if r.alternatives)}))
except grpc.RpcError as exc:
    print(json.dumps({"error": exc.code().name}))
"""


def test_the_riva_client_recognizes_over_tls_with_its_client_certificate(
    tls_server: TlsServer, pki: Pki, tmp_path: Path
) -> None:
    """Riva's own SDK (in a process of its own: its protos share names with ours), ``use_ssl`` with the test CA."""
    if importlib.util.find_spec("riva") is None:  # (not imported here: its protos would clash with ours)
        pytest.skip("needs nvidia-riva-client")
    utterances = _utterances()
    wav = _wav(tmp_path / "speech.wav", utterances)

    def peer(cert: Path | None, key: Path | None) -> dict[str, Any]:
        args = [
            tls_server.grpc_target,
            tls_server.keys["ingest"],
            str(wav),
            str(pki.ca),
            str(cert or ""),
            str(key or ""),
        ]
        out = subprocess.run(
            [sys.executable, "-c", _RIVA_PEER, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return answer

    recognized = peer(pki.client_cert, pki.client_key)
    assert "text" in recognized, recognized
    assert len(_words(recognized["text"]) & _words(utterances[0].ref)) >= len(_words(utterances[0].ref)) // 2
    assert peer(None, None) == {"error": "UNAVAILABLE"}


async def test_the_deepgram_sdk_streams_over_wss(
    tls_server: TlsServer, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deepgram's SDK pointed at ``wss://`` (its websockets trust what SSL_CERT_FILE names: the test CA)."""
    deepgram = pytest.importorskip("deepgram")
    from deepgram.listen.v1.types import ListenV1Results

    monkeypatch.setenv("SSL_CERT_FILE", str(pki.ca))
    environment = deepgram.DeepgramClientEnvironment(
        base=tls_server.url, production=tls_server.ws_url, agent=tls_server.ws_url, agent_rest=tls_server.url
    )
    client = deepgram.AsyncDeepgramClient(api_key=tls_server.keys["ingest"], environment=environment)
    utterances = _utterances()
    speech = program(utterances)
    data = speech.pcm.astype("<i2").tobytes()
    results: list[Any] = []
    params = {"model": "nova-3", "encoding": "linear16", "sample_rate": speech.sample_rate, "interim_results": False}
    async with client.listen.v1.connect(**params) as socket:

        async def receive() -> None:
            try:
                async for message in socket:
                    results.append(message)
            except Exception:
                pass

        reader = asyncio.create_task(receive())
        step = speech.sample_rate // 10 * 2  # 100 ms
        for offset in range(0, len(data), step):
            await socket.send_media(data[offset : offset + step])
            await asyncio.sleep(0.05)
        await socket.send_close_stream()
        await asyncio.wait_for(reader, 60)
    text = " ".join(
        r.channel.alternatives[0].transcript for r in results if isinstance(r, ListenV1Results) and r.is_final
    )
    assert len(_words(text) & _words(utterances[0].ref)) >= len(_words(utterances[0].ref)) // 2, results


# -- SIP over TLS with SBC certificates ----------------------------------------------------------------------------


def _sip_options(port: int) -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex[:12]
    return (
        f"OPTIONS sip:recorder@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/TLS 127.0.0.1:5061;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:sbc@127.0.0.1>;tag=tls1\r\n"
        f"To: <sip:recorder@127.0.0.1:{port}>\r\n"
        f"Call-ID: tls-{uuid.uuid4().hex}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _sip_over_tls(server: TlsServer, context: ssl.SSLContext) -> str:
    """The answer to an OPTIONS ping over TLS, or the error that ended the connection."""
    try:
        with socket.create_connection(("127.0.0.1", server.sip_tls_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(_sip_options(server.sip_tls_port))
                answer = tls.recv(65535).decode()
                return answer or "closed"
    except (ssl.SSLError, OSError) as exc:
        return f"refused: {exc}"


def test_sip_over_tls_takes_only_sbcs_with_a_certificate_of_the_client_ca(tls_server: TlsServer, pki: Pki) -> None:
    accepted = _sip_over_tls(tls_server, pki.client_context(with_cert=True))
    assert accepted.startswith("SIP/2.0 200"), accepted
    rogue = pki.client_context()
    rogue.load_cert_chain(pki.rogue_cert, pki.rogue_key)
    for context in (pki.client_context(with_cert=False), rogue):
        refused = _sip_over_tls(tls_server, context)
        assert not refused.startswith("SIP/2.0"), refused


# -- recognition workers over mutual TLS ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_worker(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``media-server worker --tls-cert --tls-key --tls-ca``: TLS, nodes' certificates required."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("tls-worker") / "worker.log"
    env = {**os.environ, "MEDIA_SERVER_WORKERS__KEY": WORKER_KEY, "MEDIA_SERVER_ASR__WORKERS": "1"}
    tls = ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-ca", str(pki.ca)]
    process = subprocess.Popen(
        [str(BIN), "worker", "--port", str(port), *tls],
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 60
    while "recognition worker ready" not in log_path.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    yield f"localhost:{port}"
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


async def test_a_node_decodes_on_a_worker_over_mutual_tls(tls_worker: str, pki: Pki) -> None:
    utterance = _utterances()[0]
    audio = resample(int16_to_float32(utterance.pcm), utterance.sample_rate, 16000)
    settings = WorkersSettings(
        urls=[tls_worker],
        key=WORKER_KEY,
        tls_ca=pki.ca,
        tls_cert=pki.client_cert,
        tls_key=pki.client_key,
        status_interval_s=0.2,
    )
    scheduler = RemoteScheduler(settings)
    await scheduler.start()
    try:
        assert scheduler.reachable, scheduler.workers()
        hypothesis = await scheduler.decode(DecodeRequest(audio=audio, final=True))
    finally:
        await scheduler.aclose()
    assert len(_words(hypothesis.text) & _words(utterance.ref)) >= len(_words(utterance.ref)) // 2

    # A node without a client certificate, and a plain-text one, do not get through.
    for options in ({"tls_ca": pki.ca}, {}):
        refused = RemoteScheduler(WorkersSettings(urls=[tls_worker], key=WORKER_KEY, status_interval_s=0.2, **options))
        await refused.start()
        try:
            assert not refused.reachable
        finally:
            await refused.aclose()
    with grpc.secure_channel(tls_worker, pki.grpc_credentials(with_cert=False)) as channel:
        with pytest.raises(grpc.RpcError) as error:
            worker_pb2_grpc.RecognitionWorkerStub(channel).Status(  # type: ignore[no-untyped-call]
                worker_pb.WorkerStatusRequest(), metadata=(("x-worker-key", WORKER_KEY),), timeout=5
            )
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE


# -- Redis over TLS ------------------------------------------------------------------------------------------------


@pytest.fixture
def tls_redis(pki: Pki) -> Iterator[int]:
    """A ``redis-server`` of this test's own that speaks TLS only (``--port 0``), client certificates required."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("no redis-server")
    assert binary is not None
    directory = Path(tempfile.mkdtemp(prefix="media-server-redis-tls-"))
    port = free_port()
    args = ["--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key)]
    args += ["--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes", "--dir", str(directory)]
    process = subprocess.Popen([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                _missing(f"redis-server does not speak TLS here: {output.strip()[-300:]}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not listen")
            time.sleep(0.05)
        yield port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


async def test_the_redis_bus_connects_over_tls_with_a_client_certificate(tls_redis: int, pki: Pki) -> None:
    from media_server.bus.redis import RedisEventBus, redis_client

    url = f"rediss://localhost:{tls_redis}/0"
    settings = Settings.model_validate(
        {
            "events": {
                "bus": "redis",
                "redis_url": url,
                "redis_ca_file": str(pki.ca),
                "redis_cert_file": str(pki.client_cert),
                "redis_key_file": str(pki.client_key),
            }
        }
    )
    e = settings.events
    assert e.redis_url is not None
    bus = RedisEventBus(e.redis_url, e.redis_prefix)
    await bus.start(wait_s=5)
    try:
        client = redis_client(e.redis_url)
        assert await client.ping()
        await client.aclose()
    finally:
        await bus.close()
    # Without the client certificate the server refuses the handshake.
    anonymous = Settings.model_validate({"events": {"bus": "redis", "redis_url": url, "redis_ca_file": str(pki.ca)}})
    assert anonymous.events.redis_url is not None
    refused = RedisEventBus(anonymous.events.redis_url)
    with pytest.raises(ConnectionError):
        await refused.start(wait_s=1)
    await refused.close()


# -- PostgreSQL with sslmode -----------------------------------------------------------------------------------------


@pytest.fixture
def tls_postgres(pki: Pki) -> Iterator[str]:
    """A throwaway PostgreSQL with ``ssl = on`` and the test CA's server certificate (the URL without sslmode)."""
    initdb, pg_ctl = _postgres_binary("initdb"), _postgres_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        _missing("no PostgreSQL binaries (initdb, pg_ctl)")
    assert initdb is not None and pg_ctl is not None
    base = Path(tempfile.mkdtemp(prefix="media-server-pg-tls-"))
    as_user: list[str] = []
    cert, key = base / "server.crt", base / "server.key"
    shutil.copy(pki.server_cert, cert)
    shutil.copy(pki.server_key, key)
    key.chmod(0o600)
    if os.geteuid() == 0:
        for path in (base, cert, key):
            shutil.chown(path, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "--auth=trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = (
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c ssl=on "
        f"-c ssl_cert_file={cert} -c ssl_key_file={key}"
    )
    started = subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        log = (base / "log").read_text(errors="replace") if (base / "log").exists() else started.stderr
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL with ssl=on did not start: {log}")
    try:
        yield f"postgresql+asyncpg://postgres@localhost:{port}/postgres"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


async def test_the_store_connects_to_postgresql_with_libpq_ssl_parameters(tls_postgres: str, pki: Pki) -> None:
    from sqlalchemy import text

    from media_server.store.store import Store

    settings = Settings.model_validate({"database_url": f"{tls_postgres}?sslmode=verify-full&sslrootcert={pki.ca}"})
    store = Store(settings.db_url)
    try:
        await store.open()
        async with store.engine.connect() as conn:
            encrypted = (await conn.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))).scalar()
        assert encrypted is True
    finally:
        await store.close()
    # verify-full checks the server against the CA it is given: another CA's is refused.
    wrong = Store(f"{tls_postgres}?sslmode=verify-full&sslrootcert={pki.rogue_ca}")
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            await wrong.open()
    finally:
        await wrong.close()


# -- the reverse proxy of the README (nginx terminating TLS in front of a plain server) -----------------------------

NGINX_CONF = ROOT / "deploy" / "nginx" / "media-server.conf"


def _nginx_config(directory: Path, pki: Pki, server: Server, https_port: int) -> Path:
    """The documented site, its placeholders filled in, inside a minimal nginx.conf of this test's own."""
    site = NGINX_CONF.read_text()
    assert "listen 443 ssl http2;" in site and "127.0.0.1:8080" in site and "127.0.0.1:50051" in site
    http_port = int(server.url.rsplit(":", 1)[1])
    for placeholder, value in {
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "calls.example.com": "localhost",
        "/etc/ssl/media-server/fullchain.pem": str(pki.server_cert),
        "/etc/ssl/media-server/privkey.pem": str(pki.server_key),
        "127.0.0.1:8080": f"127.0.0.1:{http_port}",
        "127.0.0.1:50051": f"127.0.0.1:{server.grpc_target.rsplit(':', 1)[1]}",
    }.items():
        site = site.replace(placeholder, value)
    (directory / "site.conf").write_text(site)
    main = f"""
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {directory}/site.conf;
}}
"""
    conf = directory / "nginx.conf"
    conf.write_text(main)
    return conf


@pytest.fixture
def nginx_proxy(server: Server, pki: Pki, tmp_path: Path) -> Iterator[str]:
    """nginx with the README's configuration in front of the session's plain server: its https://localhost:PORT."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        _missing("nginx is not installed (apt-get install nginx)")
    assert binary is not None
    port = free_port()
    conf = _nginx_config(tmp_path, pki, server, port)
    checked = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(tmp_path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(tmp_path), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start: {(tmp_path / 'error.log').read_text(errors='replace')}")
            time.sleep(0.05)
        yield f"localhost:{port}"
    finally:
        process.terminate()
        process.wait(10)


async def test_the_documented_nginx_proxy_carries_websockets_grpc_and_whip(
    nginx_proxy: str, server: Server, pki: Pki
) -> None:
    from aiortc import RTCPeerConnection

    context = pki.client_context()
    key = server.keys["admin"]
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=f"https://{nginx_proxy}", verify=context, headers=headers) as http:
        assert (await http.get("/health")).status_code == 200
        # WHIP: the SDP offer through the proxy, the answer and its Location back, DELETE on the Location.
        pc = RTCPeerConnection()
        pc.addTransceiver("audio", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        try:
            call_id = "whip-" + uuid.uuid4().hex[:12]
            answer = await http.post(
                f"/v1/ingest/whip?callId={call_id}&role=rep",
                content=pc.localDescription.sdp,
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {server.keys['ingest']}"},
            )
            assert answer.status_code == 201, answer.text
            assert answer.text.startswith("v=0") and answer.headers["location"].startswith("/v1/ingest/whip/")
            ended = await http.delete(
                answer.headers["location"], headers={"Authorization": f"Bearer {server.keys['ingest']}"}
            )
            assert ended.status_code in (200, 204), ended.text
        finally:
            await pc.close()

        # Websockets: a call's events subscribed through the proxy see it end (the WHIP leg above).
        async with connect(
            f"wss://{nginx_proxy}/v1/calls/{call_id}/events?after=0", ssl=context, additional_headers=headers
        ) as ws:
            first = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert first["type"] == "call_started", first

    # gRPC over HTTP/2 through the proxy, verified against the test CA.
    async with grpc.aio.secure_channel(nginx_proxy, pki.grpc_credentials()) as channel:
        listed = await api_pb2_grpc.MediaServerStub(channel).ListCalls(  # type: ignore[no-untyped-call]
            api_pb2.ListCallsRequest(limit=50), metadata=(("authorization", f"Bearer {key}"),), timeout=10
        )
    assert listed is not None


def test_a_client_ca_without_a_certificate_of_its_own_is_refused_at_start(pki: Pki, tmp_path: Path) -> None:
    """Requiring client certificates on a listener that serves no TLS would be silently open: refused instead."""
    env = {**os.environ, "MEDIA_SERVER_TLS__CLIENT_CA": str(pki.ca), "MEDIA_SERVER_WORKERS__KEY": WORKER_KEY}
    serve = subprocess.run(
        [str(BIN), "serve", "--data-dir", str(tmp_path), "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert serve.returncode == 2 and "tls.client_ca" in serve.stderr
    worker = subprocess.run(
        [str(BIN), "worker", "--port", "0", "--tls-ca", str(pki.ca)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert worker.returncode == 1 and "tls_cert" in worker.stderr
