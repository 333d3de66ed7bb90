"""Local RTP ports for receivers: even ports (RFC 3550 11) in a configured range.

aiortp's ``PortAllocator`` is not used: it binds the wildcard address whatever host the server listens
on, then closes its test sockets and hands back a number that another process may take before the
receiver binds it, and it always starts from the bottom of the range, so a port freed by one call is
handed to the next while the old call's packets may still be in flight. Here the receiver itself is
bound, so a port taken by another process is skipped for certain, and the search goes round the range
from where the last one was found.
"""

from __future__ import annotations

import errno
from typing import Protocol

__all__ = ["Bindable", "PortAllocator", "PortsExhausted"]

# Errors that mean "this port, not the host, is the problem": try the next one.
_PORT_TAKEN = {errno.EADDRINUSE, errno.EACCES}


class Bindable(Protocol):
    """What the allocator binds: a receiver (``RtpReceiver``) that listens on a port it is given."""

    async def bind(self, host: str, port: int) -> None:
        """Listen on ``host``:``port``; ``OSError`` if the port is taken."""
        ...


class PortsExhausted(RuntimeError):
    """No even port of the range could be bound."""


class PortAllocator:
    def __init__(self, host: str, low: int, high: int) -> None:
        first = low + low % 2
        if not 0 < first <= high <= 65535:
            raise ValueError(f"RTP port range {low}-{high} holds no even port between 1 and 65535")
        self.host = host
        self.low = low
        self.high = high
        self._ports = range(first, high + 1, 2)
        self._in_use: set[int] = set()
        self._cursor = 0

    @property
    def in_use(self) -> frozenset[int]:
        return frozenset(self._in_use)

    async def open(self, receiver: Bindable) -> int:
        """Bind ``receiver`` on a free even port of the range (its RTCP sink on the odd one above) and return it.

        Raises ``PortsExhausted`` when every port is held by this allocator or taken by another process.
        """
        for step in range(len(self._ports)):
            index = (self._cursor + step) % len(self._ports)
            port = self._ports[index]
            if port in self._in_use:
                continue
            self._in_use.add(port)  # reserved while binding, so a concurrent open() passes it by
            try:
                await receiver.bind(self.host, port)
            except OSError as exc:
                self._in_use.discard(port)
                if exc.errno in _PORT_TAKEN:
                    continue
                raise
            except BaseException:
                self._in_use.discard(port)
                raise
            self._cursor = index + 1
            return port
        raise PortsExhausted(
            f"no free even UDP port for RTP in {self.low}-{self.high} on {self.host} "
            f"({len(self._in_use)} held by calls); widen the RTP port range or lower the call limit"
        )

    def release(self, port: int) -> None:
        """Give ``port`` back (after closing its receiver). Unknown ports are ignored."""
        self._in_use.discard(port)
