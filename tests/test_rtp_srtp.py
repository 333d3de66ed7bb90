"""SRTP (SDES) and source admission at the RTP receiver, on real UDP sockets.

The sender encrypts real speech with libsrtp (pylibsrtp, as an SBC's SRTP stack would); the receiver must hand on
exactly that speech, and drop what the key did not protect, what is replayed, and what comes from a source the
session does not admit, without letting any of it latch or change the SSRC.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import time

import numpy as np
import pylibsrtp
import pytest

from media_server.codecs.g711 import ulaw_decode
from media_server.ingest.siprec.sources import MediaSources, resolve
from media_server.rtp.receiver import RtpReceiver
from media_server.rtp.srtp import SUITES, SdesCrypto, SrtpDecrypter, SrtpError
from tests.test_rtp_receiver import HOST, PCMU, Peer, Sink, pcmu_frames, rtp, wait_for

OTHER_HOST = "127.0.0.2"  # another loopback address: a host the session never offered


def srtp_sender(crypto: SdesCrypto) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=crypto.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=SUITES[crypto.suite].profile
    )
    return pylibsrtp.Session(policy)


def offered(suite: str = "AES_CM_128_HMAC_SHA1_80", extra: str = "") -> SdesCrypto:
    key = base64.b64encode(os.urandom(SUITES[suite].key_length)).decode()
    return SdesCrypto.parse(f"1 {suite} inline:{key}{extra}")


async def open_receiver(**kwargs: object) -> tuple[RtpReceiver, Sink]:
    sink = Sink()
    receiver = RtpReceiver(
        PCMU,
        dtmf_payload_type=None,
        epoch=time.monotonic(),
        jitter_ms=100,
        on_audio=sink.on_audio,
        on_dtmf=sink.digits.append,
        **kwargs,  # type: ignore[arg-type]
    )
    await receiver.bind(HOST, 0)
    return receiver, sink


@pytest.mark.parametrize("suite", list(SUITES))
async def test_srtp_speech_is_decrypted_and_forgeries_and_replays_are_dropped(suite: str) -> None:
    crypto = offered(suite)
    receiver, sink = await open_receiver(srtp=SrtpDecrypter(crypto))
    peer = Peer(receiver.local_port)
    sender = srtp_sender(crypto)
    frames = pcmu_frames(1.0)
    packets = [sender.protect(rtp(100 + n, 160 * n, frame)) for n, frame in enumerate(frames)]
    peer.send(*packets[:10])
    forged = srtp_sender(offered(suite)).protect(rtp(110, 1600, b"\xff" * 160, ssrc=0x0BAD))  # another key
    altered = bytearray(packets[10])
    altered[20] ^= 0x55
    peer.send(forged, bytes(altered), packets[3])  # a replay of the fourth
    peer.send(*packets[10:])
    await wait_for(lambda: sink.samples == 160 * len(frames), "the speech")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    assert receiver.stats.unauthentic == 3 and receiver.ssrc == 0x11223344
    assert receiver.stats.ssrc_changes == 0
    receiver.close()
    peer.close()


async def test_an_mki_on_every_packet_is_checked_and_removed() -> None:
    crypto = offered(extra="|2^31|7:2")
    assert crypto.mki == b"\x00\x07"
    receiver, sink = await open_receiver(srtp=SrtpDecrypter(crypto))
    peer = Peer(receiver.local_port)
    sender = srtp_sender(crypto)
    frames = pcmu_frames(0.4)

    def with_mki(packet: bytes, mki: bytes = b"\x00\x07") -> bytes:  # RFC 3711 3.1: before the 10-byte tag
        return packet[:-10] + mki + packet[-10:]

    packets = [with_mki(sender.protect(rtp(n, 160 * n, frame))) for n, frame in enumerate(frames)]
    peer.send(with_mki(sender.protect(rtp(500, 0, frames[0], ssrc=9)), b"\x00\x08"), *packets)
    await wait_for(lambda: sink.samples == 160 * len(frames), "the speech")
    assert receiver.stats.unauthentic == 1
    with pytest.raises(SrtpError):
        SrtpDecrypter(crypto).unprotect(b"\x80\x00" + b"\x00" * 10)
    receiver.close()
    peer.close()


async def test_rtp_from_a_source_not_admitted_is_dropped_and_never_latches() -> None:
    """The SBC streams from 127.0.0.1 (offered); a host never offered (127.0.0.2) sends its own SSRC in between."""
    sources = MediaSources("call-1", "192.0.2.10", [])
    sources.offer([HOST])
    receiver, sink = await open_receiver(admit_source=lambda source: sources.admits("1", source))
    peer = Peer(receiver.local_port)
    intruder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    intruder.bind((OTHER_HOST, 0))
    frames = pcmu_frames(1.0)
    for n, frame in enumerate(frames):
        peer.send(rtp(n, 160 * n, frame))
        intruder.sendto(rtp(n, 160 * n, b"\xff" * 160, ssrc=0xBAD), (HOST, receiver.local_port))
    await wait_for(lambda: sink.samples == 160 * len(frames), "the speech")
    await wait_for(lambda: receiver.stats.refused == len(frames), "the intruder's packets to be refused")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    assert receiver.ssrc == 0x11223344 and receiver.source == peer.address and receiver.stats.ssrc_changes == 0
    assert sources.refused == len(frames)
    receiver.close()
    peer.close()
    intruder.close()


def test_each_refused_host_is_logged_once_per_call(caplog: pytest.LogCaptureFixture) -> None:
    sources = MediaSources("call-4", "192.0.2.10", [])
    with caplog.at_level(logging.WARNING, logger="media_server.ingest.siprec.sources"):
        for port in range(4000, 4100):  # a sender that changes its source port with every packet
            assert not sources.admits("1", ("203.0.113.9", port))
        assert not sources.admits("2", ("203.0.113.10", 4000))
    assert [r.getMessage() for r in caplog.records] == [
        "SIPREC call call-4, stream 1: RTP from 203.0.113.9:4000 dropped: neither offered in the SDP nor on sip.allow",
        "SIPREC call call-4, stream 2: RTP from 203.0.113.10:4000 dropped: neither offered in the SDP nor on sip.allow",
    ]
    assert sources.refused == 101


def test_admitted_sources_are_the_offered_the_signalling_and_the_allowed_ones() -> None:
    sources = MediaSources("call-2", "::ffff:192.0.2.10", ["10.20.0.0/16"])
    sources.offer(["198.51.100.7", "sbc.example.com"])
    assert sources.allows("192.0.2.10") and sources.allows("198.51.100.7") and sources.allows("10.20.3.4")
    assert sources.allows("::ffff:198.51.100.7")
    assert not sources.allows("203.0.113.9") and not sources.allows("10.21.0.1")
    sources.offer(["198.51.100.8"])  # a re-INVITE moved the media to another node
    assert not sources.allows("198.51.100.7") and sources.allows("198.51.100.8")
    assert not MediaSources("call-3", "192.0.2.10", []).allows("203.0.113.9"), "an empty allow adds nobody"


async def test_a_host_name_in_the_sdp_is_resolved_and_one_that_does_not_resolve_adds_nothing() -> None:
    hosts = await resolve(["localhost", "198.51.100.7", "198.51.100.7", "", "no-such-sbc.invalid"])
    assert "127.0.0.1" in hosts and hosts.count("198.51.100.7") == 1
    assert not any("invalid" in h for h in hosts)
