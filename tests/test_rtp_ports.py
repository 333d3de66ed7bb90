"""RTP port allocation on real sockets: even ports, ports taken by anyone skipped, a clear error when none is left."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest

from media_server.rtp.formats import RtpFormat
from media_server.rtp.ports import PortAllocator, PortsExhausted
from media_server.rtp.receiver import RtpReceiver

HOST = "127.0.0.1"


def _receiver() -> RtpReceiver:
    def on_audio(pcm: np.ndarray, start: float) -> None:
        pass

    def on_dtmf(digit: str) -> None:
        pass

    fmt = RtpFormat("PCMU", 0, 8000)
    return RtpReceiver(
        fmt, dtmf_payload_type=101, epoch=time.monotonic(), jitter_ms=0, on_audio=on_audio, on_dtmf=on_dtmf
    )


def _free_even_range(ports: int) -> int:
    """The first port of ``ports`` consecutive free UDP ports (starting even) on HOST."""
    for base in range(42000, 60000, 64):
        sockets = []
        try:
            for port in range(base, base + ports):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind((HOST, port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free UDP port range for the test")


@contextmanager
def _taken(port: int) -> Iterator[None]:
    """``port`` held by "another process" (a plain socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, port))
        yield


async def test_opens_even_ports_and_skips_those_taken() -> None:
    base = _free_even_range(8)
    allocator = PortAllocator(HOST, base + 1, base + 7)  # odd low: starts at base + 2
    receivers = [_receiver() for _ in range(3)]
    try:
        with _taken(base + 2):
            first = await allocator.open(receivers[0])
            assert first == base + 4
            assert receivers[0].local_port == first
            with _taken(base + 7), pytest.raises(PortsExhausted, match=f"{base + 1}-{base + 7}"):
                await allocator.open(receivers[1])  # base + 6 is free but its RTCP port is not
        second = await allocator.open(receivers[1])
        assert second == base + 6
        third = await allocator.open(receivers[2])
        assert third == base + 2
        assert allocator.in_use == {base + 2, base + 4, base + 6}
        with pytest.raises(PortsExhausted):
            await allocator.open(_receiver())
    finally:
        for receiver in receivers:
            receiver.close()


async def test_released_ports_come_back_after_the_others() -> None:
    base = _free_even_range(6)
    allocator = PortAllocator(HOST, base, base + 5)
    a, b = _receiver(), _receiver()
    try:
        port_a = await allocator.open(a)
        a.close()
        allocator.release(port_a)
        port_b = await allocator.open(b)
        assert port_b != port_a  # round the range: the freed port is not handed straight back
        c = _receiver()
        assert await allocator.open(c) not in (port_b,)
        c.close()
    finally:
        a.close()
        b.close()


async def test_a_host_that_is_not_ours_is_an_os_error_not_exhaustion() -> None:
    allocator = PortAllocator("192.0.2.1", 40000, 40010)  # TEST-NET-1, never a local address
    with pytest.raises(OSError) as raised:
        await allocator.open(_receiver())
    assert not isinstance(raised.value, PortsExhausted)
    assert allocator.in_use == frozenset()


def test_ranges_without_an_even_port_are_refused() -> None:
    with pytest.raises(ValueError):
        PortAllocator(HOST, 40001, 40001)
    with pytest.raises(ValueError):
        PortAllocator(HOST, 0, 10)
