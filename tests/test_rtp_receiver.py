"""The RTP receiver on real UDP sockets: real speech in, packets reordered, duplicated, lost, wrapped, switched.

Timing: packets are sent in bursts, so they arrive within milliseconds of each other, far inside the
jitter buffer's hold; what a test waits for is the receiver's output, never a duration.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from aiortp.dtmf import DtmfEvent
from aiortp.packet import RtcpRrPacket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_server.codecs.g711 import alaw_encode, ulaw_decode, ulaw_encode
from media_server.rtp.formats import RtpFormat
from media_server.rtp.packet import RtpPacket
from media_server.rtp.receiver import MAX_AHEAD, STALE_SSRC, RtpReceiver
from tests.test_rtp_codecs import best_correlation, encode_g722, encode_opus, speech

Int16Array = npt.NDArray[np.int16]

HOST = "127.0.0.1"
PCMU = RtpFormat("PCMU", 0, 8000)
PCMA = RtpFormat("PCMA", 8, 8000)
G722 = RtpFormat("G722", 9, 8000)
OPUS = RtpFormat("opus", 111, 48000, 2)
DTMF_PT = 101
SSRC = 0x11223344
EPS = 1e-6


def rtp(seq: int, ts: int, payload: bytes, *, ssrc: int = SSRC, pt: int = 0, marker: int = 0) -> bytes:
    return RtpPacket(pt, marker, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload).serialize()


def pcmu_frames(seconds: float = 2.0) -> list[bytes]:
    """20 ms PCMU payloads of real speech."""
    pcm = speech(8000, seconds)
    return [ulaw_encode(pcm[i : i + 160]) for i in range(0, len(pcm), 160)]


@dataclass
class Sink:
    chunks: list[tuple[Int16Array, float]] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)

    def on_audio(self, pcm: Int16Array, start: float) -> None:
        assert pcm.dtype == np.int16 and pcm.ndim == 1 and len(pcm)
        self.chunks.append((pcm.copy(), start))

    @property
    def samples(self) -> int:
        return sum(len(pcm) for pcm, _ in self.chunks)

    def pcm(self) -> Int16Array:
        return np.concatenate([pcm for pcm, _ in self.chunks])

    def starts(self) -> list[float]:
        return [start for _, start in self.chunks]

    def assert_in_order(self, rate: int) -> None:
        """Each chunk starts at or after the end of the one before: in order, each sample once."""
        for (pcm, start), (_, following) in zip(self.chunks, self.chunks[1:], strict=False):
            assert following >= start + len(pcm) / rate - EPS


class Peer:
    """A sending endpoint (an SBC's media port)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = port

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def send(self, *datagrams: bytes) -> None:
        for data in datagrams:
            self.sock.sendto(data, (HOST, self.port))

    def close(self) -> None:
        self.sock.close()


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def no_errors_logged() -> Iterator[None]:
    """The receiver logs what it catches; in these tests it must catch nothing."""
    handler = _Records()
    logger = logging.getLogger("media_server.rtp")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    assert not handler.records, [record.getMessage() for record in handler.records]


async def open_receiver(
    fmt: RtpFormat = PCMU, jitter_ms: int = 200, remote: tuple[str, int] | None = None, epoch: float | None = None
) -> tuple[RtpReceiver, Sink, Peer]:
    sink = Sink()
    receiver = RtpReceiver(
        fmt,
        dtmf_payload_type=DTMF_PT,
        epoch=time.monotonic() if epoch is None else epoch,
        jitter_ms=jitter_ms,
        on_audio=sink.on_audio,
        on_dtmf=sink.digits.append,
        remote=remote,
    )
    await receiver.bind(HOST, 0)
    return receiver, sink, Peer(receiver.local_port)


async def test_in_order_stream_comes_out_whole_on_the_call_timeline() -> None:
    epoch = time.monotonic()
    receiver, sink, peer = await open_receiver(epoch=epoch)
    frames = pcmu_frames()
    sent_at = time.monotonic()
    peer.send(*(rtp(1000 + n, 5000 + 160 * n, frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    first = sink.starts()[0]
    assert sent_at - epoch - EPS <= first <= time.monotonic() - epoch
    assert sink.starts() == pytest.approx([first + 0.02 * n for n in range(len(frames))])
    assert receiver.stats.packets == len(frames)
    assert receiver.stats.bytes == len(frames) * (12 + 160)
    assert (receiver.stats.lost, receiver.stats.concealed_ms, receiver.stats.duplicates) == (0, 0.0, 0)
    assert receiver.last_packet_at is not None and receiver.last_packet_at >= sent_at
    assert receiver.source == peer.address and receiver.ssrc == SSRC
    receiver.close()
    peer.close()


async def test_reordered_and_duplicated_packets_come_out_in_order_once() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames()
    order = [0]
    for n in range(1, len(frames), 2):
        order += [n + 1, n] if n + 1 < len(frames) else [n]  # 0, 2, 1, 4, 3, ...
    datagrams = []
    for n in order:
        datagrams.append(rtp(n, 160 * n, frames[n]))
        if n % 10 == 3:
            datagrams.append(rtp(n, 160 * n, frames[n]))
    peer.send(*datagrams)
    await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    sink.assert_in_order(8000)
    assert receiver.stats.duplicates == len(frames) // 10
    assert receiver.stats.reordered == len(frames) // 2 - 1
    assert (receiver.stats.lost, receiver.stats.late) == (0, 0)
    receiver.close()
    peer.close()


async def test_lost_packets_are_concealed_in_place_and_the_tail_is_not_stuck() -> None:
    receiver, sink, peer = await open_receiver(jitter_ms=100)
    frames = pcmu_frames(1.0)
    lost = {10, 11, 30}
    peer.send(*(rtp(n, 160 * n, frame) for n, frame in enumerate(frames) if n not in lost))
    # Nothing more is sent: the buffer's timer must give the gaps up and release the packets behind them.
    await wait_for(lambda: sink.samples == 160 * len(frames), "the audio with its gaps concealed")
    decoded = ulaw_decode(b"".join(frames))
    got = sink.pcm()
    for n in range(len(frames)):
        if n not in lost:
            assert np.array_equal(got[160 * n : 160 * (n + 1)], decoded[160 * n : 160 * (n + 1)])
    first = sink.starts()[0]
    chunk_starts = {round((start - first) / 0.02): len(pcm) for pcm, start in sink.chunks}
    assert chunk_starts[10] == 320 and chunk_starts[30] == 160  # concealment where the lost packets were
    assert best_correlation(got[1600:1760], decoded[1440:1600], 0) > 0.5  # the last frame, repeated
    sink.assert_in_order(8000)
    assert receiver.stats.lost == 3
    assert receiver.stats.concealed_ms == pytest.approx(60.0)
    receiver.close()
    peer.close()


async def test_a_packet_after_its_place_was_given_up_is_late() -> None:
    receiver, sink, peer = await open_receiver(jitter_ms=50)
    frames = pcmu_frames(0.2)
    peer.send(*(rtp(n, 160 * n, frame) for n, frame in enumerate(frames) if n != 5))
    await wait_for(lambda: sink.samples == 160 * len(frames), "the audio with packet 5 concealed")
    peer.send(rtp(5, 800, frames[5]))
    await wait_for(lambda: receiver.stats.late == 1, "the late packet to be counted")
    assert sink.samples == 160 * len(frames)
    assert receiver.stats.lost == 1
    receiver.close()
    peer.close()


async def test_without_jitter_buffering_packets_go_out_as_they_come() -> None:
    receiver, sink, peer = await open_receiver(jitter_ms=0)
    frames = pcmu_frames(0.1)
    for n in (0, 2, 1, 3, 3, 4):
        peer.send(rtp(n, 160 * n, frames[n]))
    await wait_for(lambda: receiver.stats.packets == 6, "every packet")
    decoded = ulaw_decode(b"".join(frames))
    got = sink.pcm()
    assert len(got) == 5 * 160  # 0, 1 concealed, 2, 3, 4
    assert np.array_equal(got[:160], decoded[:160])
    assert np.array_equal(got[320:], decoded[320:])
    assert (receiver.stats.late, receiver.stats.duplicates, receiver.stats.lost) == (1, 1, 1)
    receiver.close()
    peer.close()


async def test_silence_suppression_is_a_jump_in_time_not_a_loss() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(0.8)
    gap = 4000  # 0.5 s of timestamps with no packets (and no sequence numbers missing)
    peer.send(*(rtp(n, 160 * n + (gap if n >= 20 else 0), frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    starts = sink.starts()
    assert starts[20] - starts[19] == pytest.approx(0.02 + 0.5)
    assert starts[39] - starts[20] == pytest.approx(19 * 0.02)
    assert (receiver.stats.lost, receiver.stats.concealed_ms, receiver.stats.timestamp_jumps) == (0, 0.0, 0)
    receiver.close()
    peer.close()


async def test_sequence_and_timestamp_wrap_around() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(1.0)
    ts0, seq0 = 2**32 - 160 * 20, 65536 - 25
    peer.send(*(rtp(seq0 + n, ts0 + 160 * n, frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    first = sink.starts()[0]
    assert sink.starts() == pytest.approx([first + 0.02 * n for n in range(len(frames))])
    receiver.close()
    peer.close()


async def test_an_ssrc_change_starts_over_at_its_arrival() -> None:
    epoch = time.monotonic()
    receiver, sink, peer = await open_receiver(epoch=epoch)
    frames = pcmu_frames(1.0)
    peer.send(*(rtp(100 + n, 9000 + 160 * n, frame) for n, frame in enumerate(frames[:25])))
    await wait_for(lambda: sink.samples == 25 * 160, "the first stream")
    await asyncio.sleep(0.6)  # a failover takes a while; the new stream is placed by its arrival
    switched_at = time.monotonic()
    other = 0x55667788
    peer.send(*(rtp(40000 + n, 123456789 + 160 * n, frame, ssrc=other) for n, frame in enumerate(frames[25:])))
    await wait_for(lambda: sink.samples == 50 * 160, "the second stream")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    starts = sink.starts()
    assert switched_at - epoch - EPS <= starts[25] <= time.monotonic() - epoch
    assert starts[25] > starts[24] + 0.05
    assert starts[26:] == pytest.approx([starts[25] + 0.02 * n for n in range(1, 25)])
    assert receiver.stats.ssrc_changes == 1 and receiver.ssrc == other
    peer.send(rtp(125, 9000 + 160 * 25, frames[0]))  # a straggler of the old SSRC: no switching back
    await wait_for(lambda: receiver.stats.ignored == 1, "the straggler to be ignored")
    assert receiver.stats.ssrc_changes == 1 and receiver.ssrc == other
    assert STALE_SSRC > 0.1
    receiver.close()
    peer.close()


async def test_timestamps_that_jump_ahead_of_the_clock_are_re_anchored() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(0.4)
    jump = int(8000 * (MAX_AHEAD + 9))
    peer.send(*(rtp(n, 160 * n + (jump if n >= 10 else 0), frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    starts = sink.starts()
    assert starts[10] - starts[9] < MAX_AHEAD  # not 9 s into the future
    sink.assert_in_order(8000)
    assert receiver.stats.timestamp_jumps == 1
    receiver.close()
    peer.close()


async def test_timestamps_that_go_back_are_re_anchored_after_the_audio_already_out() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(0.4)
    peer.send(*(rtp(n, 160 * n + (0 if n < 10 else -8000), frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    sink.assert_in_order(8000)
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    assert receiver.stats.timestamp_jumps == 1
    receiver.close()
    peer.close()


async def test_latches_onto_the_first_source_and_follows_a_new_ssrc() -> None:
    receiver, sink, peer = await open_receiver()
    intruder = Peer(receiver.local_port)
    frames = pcmu_frames(0.4)
    peer.send(*(rtp(n, 160 * n, frames[n]) for n in range(5)))
    await wait_for(lambda: sink.samples == 5 * 160, "the first packets")
    intruder.send(*(rtp(n, 160 * n, frames[n]) for n in range(5, 10)))  # same SSRC, other address
    await wait_for(lambda: receiver.stats.ignored == 5, "the other address to be ignored")
    assert sink.samples == 5 * 160 and receiver.source == peer.address
    intruder.send(*(rtp(500 + n, 160 * n, frames[n], ssrc=7) for n in range(10, 20)))  # new SSRC: re-latch
    await wait_for(lambda: sink.samples == 15 * 160, "the new source")
    assert receiver.source == intruder.address and receiver.ssrc == 7
    peer.send(rtp(5, 800, frames[5]))
    await wait_for(lambda: receiver.stats.ignored == 6, "the old source to be ignored")
    receiver.close()
    peer.close()
    intruder.close()


async def test_a_given_remote_host_is_the_only_one_taken() -> None:
    receiver, sink, peer = await open_receiver(remote=("192.0.2.7", 4000))
    frames = pcmu_frames(0.2)
    peer.send(*(rtp(n, 160 * n, frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: receiver.stats.ignored == len(frames), "the packets to be ignored")
    assert sink.samples == 0 and receiver.last_packet_at is None
    receiver.close()
    peer.close()
    receiver, sink, peer = await open_receiver(remote=(HOST, 4000))  # any port of that host
    peer.send(*(rtp(n, 160 * n, frame) for n, frame in enumerate(frames)))
    await wait_for(lambda: sink.samples == 160 * len(frames), "the audio")
    receiver.close()
    peer.close()


def _dtmf(seq: int, ts: int, event: int, *, end: bool, duration: int, ssrc: int = SSRC) -> bytes:
    payload = DtmfEvent(event=event, end=end, volume=10, duration=duration).serialize()
    return rtp(seq, ts, payload, ssrc=ssrc, pt=DTMF_PT)


async def test_dtmf_digits_once_each_and_their_packets_are_not_loss() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(0.8)
    datagrams, seq, ts = [], 0, 0
    for block, (digit_event, copies) in enumerate([(1, 1), (11, 1), (5, 2)]):
        for n in range(10):
            datagrams.append(rtp(seq, ts, frames[10 * block + n]))
            seq, ts = seq + 1, ts + 160
        for _ in range(copies):  # a sender that repeats its first event packet, then a normal press
            datagrams.append(_dtmf(seq, ts, digit_event, end=False, duration=160))
            seq += 1
        for duration in (320, 480):
            datagrams.append(_dtmf(seq, ts, digit_event, end=False, duration=duration))
            seq += 1
        for _ in range(3):
            datagrams.append(_dtmf(seq, ts, digit_event, end=True, duration=640))
            seq += 1
        ts += 640
    datagrams.append(datagrams[-1])  # and one duplicate datagram
    peer.send(*datagrams)
    await wait_for(lambda: sink.samples == 30 * 160 and len(sink.digits) == 3, "the audio and the digits")
    await asyncio.sleep(0.05)
    assert sink.digits == ["1", "#", "5"]
    assert receiver.stats.dtmf == 3
    assert (receiver.stats.lost, receiver.stats.concealed_ms) == (0, 0.0)
    starts = sink.starts()
    assert starts[10] - starts[9] == pytest.approx(0.02 + 0.08)  # the key press is a gap in the audio
    receiver.close()
    peer.close()


async def test_dtmf_on_its_own_ssrc_gives_digits_and_leaves_the_audio_alone() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(0.4)
    peer.send(*(rtp(n, 160 * n, frames[n]) for n in range(10)))
    peer.send(*(_dtmf(700 + k, 4242, 9, end=k >= 2, duration=160 * (k + 1), ssrc=99) for k in range(5)))
    peer.send(*(rtp(n, 160 * n, frames[n]) for n in range(10, 20)))
    await wait_for(lambda: sink.samples == 20 * 160 and sink.digits == ["9"], "the audio and the digit")
    assert receiver.stats.ssrc_changes == 0 and receiver.ssrc == SSRC
    assert receiver.stats.lost == 0
    receiver.close()
    peer.close()


async def test_junk_rtcp_and_unknown_payload_types_are_counted_and_the_stream_goes_on() -> None:
    receiver, sink, peer = await open_receiver()
    frames = pcmu_frames(0.4)
    rtcp = bytes(RtcpRrPacket(ssrc=SSRC))
    with no_errors_logged():
        for n, frame in enumerate(frames):
            peer.send(rtp(n, 160 * n, frame))
            if n % 5 == 0:
                peer.send(b"\x00junk", rtcp, rtp(n, 0, b"\x01\x02", pt=18), rtp(n, 0, b"", pt=0))
        await wait_for(lambda: sink.samples == 160 * len(frames), "all the audio")
    assert np.array_equal(sink.pcm(), ulaw_decode(b"".join(frames)))
    assert receiver.stats.malformed == 3 * len(frames) // 5
    assert receiver.stats.rtcp == len(frames) // 5
    receiver.close()
    peer.close()


async def test_rtcp_on_the_port_above_is_swallowed() -> None:
    sink = Sink()
    receiver = RtpReceiver(
        PCMU, dtmf_payload_type=None, epoch=time.monotonic(), jitter_ms=0, on_audio=sink.on_audio, on_dtmf=print
    )
    for base in range(44000, 60000, 2):
        try:
            await receiver.bind(HOST, base)
            break
        except OSError:
            continue
    peer = Peer(receiver.local_port + 1)
    peer.send(bytes(RtcpRrPacket(ssrc=SSRC)))
    await wait_for(lambda: receiver.stats.rtcp == 1, "the RTCP packet")
    with pytest.raises(OSError):
        await RtpReceiver(
            PCMU, dtmf_payload_type=None, epoch=0.0, jitter_ms=0, on_audio=sink.on_audio, on_dtmf=print
        ).bind(HOST, receiver.local_port)
    receiver.close()
    peer.close()


async def test_hold_ignores_packets_and_resuming_starts_over_without_concealment() -> None:
    epoch = time.monotonic()
    receiver, sink, peer = await open_receiver(epoch=epoch)
    frames = pcmu_frames(0.6)
    peer.send(*(rtp(n, 160 * n, frames[n]) for n in range(10)))
    await wait_for(lambda: sink.samples == 10 * 160, "the audio before the hold")
    receiver.set_paused(True)
    peer.send(*(rtp(n, 160 * n, frames[n]) for n in range(10, 20)))
    await wait_for(lambda: receiver.stats.ignored == 10, "the packets on hold to be ignored")
    await asyncio.sleep(0.3)
    receiver.set_paused(False)
    resumed_at = time.monotonic()
    peer.send(*(rtp(n + 5, 160 * n + 80000, frames[n]) for n in range(20, 30)))
    await wait_for(lambda: sink.samples == 20 * 160, "the audio after the hold")
    starts = sink.starts()
    assert starts[10] >= resumed_at - epoch - EPS
    assert (receiver.stats.lost, receiver.stats.concealed_ms) == (0, 0.0)
    receiver.close()
    peer.close()


async def test_a_re_invite_switches_the_codec() -> None:
    receiver, sink, peer = await open_receiver()
    pcm = speech(8000, 0.4)
    peer.send(*(rtp(n, 160 * n, ulaw_encode(pcm[160 * n : 160 * (n + 1)])) for n in range(10)))
    await wait_for(lambda: sink.samples == 10 * 160, "the PCMU audio")
    receiver.set_format(PCMA, DTMF_PT)
    peer.send(rtp(10, 1600, ulaw_encode(pcm[1600:1760])))  # old payload type: no longer ours
    peer.send(*(rtp(n, 160 * n, alaw_encode(pcm[160 * n : 160 * (n + 1)]), pt=8) for n in range(11, 20)))
    await wait_for(lambda: sink.samples == 19 * 160, "the PCMA audio")
    assert best_correlation(sink.pcm()[1600:], pcm[1760:], 0) > 0.99
    assert receiver.stats.malformed == 1
    sink.assert_in_order(8000)
    receiver.close()
    peer.close()


def test_a_renumbered_payload_type_keeps_the_timeline() -> None:
    sink = Sink()
    receiver = RtpReceiver(PCMU, dtmf_payload_type=None, epoch=0.0, jitter_ms=0, on_audio=sink.on_audio, on_dtmf=print)
    frames = pcmu_frames(0.4)
    for n, frame in enumerate(frames):
        if n == 10:
            receiver.set_format(RtpFormat("pcmu", 96, 8000), 97)
        receiver.handle_datagram(rtp(n, 160 * n, frame, pt=0 if n < 10 else 96), (HOST, 5004), arrival=5.0 + 0.02 * n)
    assert sink.starts() == pytest.approx([5.0 + 0.02 * n for n in range(len(frames))])
    assert receiver.stats.malformed == 0


async def test_flush_hands_on_what_is_buffered() -> None:
    receiver, sink, peer = await open_receiver(jitter_ms=60_000)
    frames = pcmu_frames(0.2)
    peer.send(*(rtp(n, 160 * n, frame) for n, frame in enumerate(frames) if n != 5))
    await wait_for(lambda: receiver.stats.packets == len(frames) - 1, "the packets")
    assert sink.samples == 5 * 160  # the rest waits for packet 5
    receiver.flush()
    assert sink.samples == len(frames) * 160
    assert receiver.stats.lost == 1
    receiver.close()
    peer.close()


async def test_g722_stream() -> None:
    receiver, sink, peer = await open_receiver(G722)
    pcm = speech(16000)
    payloads = encode_g722(pcm)
    peer.send(*(rtp(n, 160 * n, payload, pt=9) for n, payload in enumerate(payloads)))
    await wait_for(lambda: sink.samples == 320 * len(payloads), "all the audio")
    assert best_correlation(sink.pcm(), pcm, 40) > 0.9
    first = sink.starts()[0]
    assert sink.starts() == pytest.approx([first + 0.02 * n for n in range(len(payloads))])
    receiver.close()
    peer.close()


async def test_opus_stream_with_a_lost_and_a_broken_packet() -> None:
    receiver, sink, peer = await open_receiver(OPUS)
    pcm = speech(48000)
    payloads = encode_opus(pcm, channels=2)
    payloads[60] = b"\xff\xff\xff"  # undecodable
    peer.send(*(rtp(n, 960 * n, payload, pt=111) for n, payload in enumerate(payloads) if n != 30))
    await wait_for(lambda: sink.samples == 960 * len(payloads), "all the audio, gaps concealed")
    assert best_correlation(sink.pcm(), pcm, 480) > 0.85
    assert receiver.stats.lost == 1
    assert receiver.stats.decode_errors == 1
    assert receiver.stats.concealed_ms == pytest.approx(40.0)
    first = sink.starts()[0]
    chunk_starts = {round((start - first) / 0.02): len(chunk) for chunk, start in sink.chunks}
    assert chunk_starts[30] == 960 and chunk_starts[60] == 960
    sink.assert_in_order(48000)
    receiver.close()
    peer.close()


async def test_a_failing_consumer_does_not_stop_the_stream() -> None:
    calls: list[float] = []

    def on_audio(pcm: Int16Array, start: float) -> None:
        calls.append(start)
        if len(calls) == 2:
            raise RuntimeError("consumer bug")

    receiver = RtpReceiver(PCMU, dtmf_payload_type=None, epoch=0.0, jitter_ms=0, on_audio=on_audio, on_dtmf=print)
    for n, frame in enumerate(pcmu_frames(0.1)):
        receiver.handle_datagram(rtp(n, 160 * n, frame), (HOST, 5004), arrival=100.0 + 0.02 * n)
    assert len(calls) == 5
    receiver.close()


# Fuzzing the datagram handler directly (no sockets): nothing escapes, everything is accounted for.


def _fuzz_receiver(sink: Sink) -> RtpReceiver:
    return RtpReceiver(
        PCMU, dtmf_payload_type=DTMF_PT, epoch=0.0, jitter_ms=60, on_audio=sink.on_audio, on_dtmf=sink.digits.append
    )


def _accounted(receiver: RtpReceiver) -> int:
    stats = receiver.stats
    return stats.packets + stats.malformed + stats.rtcp + stats.ignored


@given(st.lists(st.binary(max_size=300), max_size=40))
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_arbitrary_datagrams(datagrams: list[bytes]) -> None:
    sink = Sink()
    receiver = _fuzz_receiver(sink)
    with no_errors_logged():
        for n, data in enumerate(datagrams):
            receiver.handle_datagram(data, (HOST, 5004), arrival=10.0 + 0.02 * n)
        receiver.flush()
    assert _accounted(receiver) >= len(datagrams)
    sink.assert_in_order(8000)


packets = st.tuples(
    st.integers(-5, 40),  # sequence offset
    st.integers(-2000, 400_000),  # timestamp offset
    st.sampled_from([0, 0, 0, DTMF_PT, 13, 18]),  # payload type
    st.sampled_from([1, 1, 1, 2]),  # SSRC
    st.binary(max_size=200),  # payload
    st.sampled_from([("10.0.0.1", 4000), ("10.0.0.1", 4000), ("10.0.0.2", 4000)]),  # source
    st.floats(0, 0.2),  # arrival delay
)


@given(
    st.lists(packets, max_size=60),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.sampled_from([0, 60]),
    st.sampled_from([None, 30]),
)
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_plausible_streams(
    stream: list[tuple[int, int, int, int, bytes, tuple[str, int], float]],
    seq0: int,
    ts0: int,
    jitter_ms: int,
    pause_at: int | None,
) -> None:
    sink = Sink()
    receiver = RtpReceiver(
        PCMU,
        dtmf_payload_type=DTMF_PT,
        epoch=0.0,
        jitter_ms=jitter_ms,
        on_audio=sink.on_audio,
        on_dtmf=sink.digits.append,
    )
    clock = 10.0
    with no_errors_logged():
        for n, (seq, ts, pt, ssrc, payload, source, delay) in enumerate(stream):
            clock += delay
            if pause_at is not None and n in (pause_at, pause_at + 5):
                receiver.set_paused(n == pause_at)  # on hold for five packets
            receiver.handle_datagram(rtp(seq0 + seq, ts0 + ts, payload, ssrc=ssrc, pt=pt), source, arrival=clock)
        receiver.flush()
    assert _accounted(receiver) >= len(stream)
    sink.assert_in_order(8000)
    assert all(start >= 0.0 for start in sink.starts())
    assert all(digit in "0123456789*#ABCD" for digit in sink.digits)
