"""A time-bounded reordering buffer for one RTP stream (one SSRC), in sequence-number order.

aiortp's ``JitterBuffer`` is not used: it holds packets by count (a power-of-two ring) rather than for
a time, releases a frame only when the next timestamp shows up (the last audio before a pause stays
stuck until more packets come), and does not tell duplicates from late packets. This buffer holds a
packet at most ``hold`` seconds waiting for a missing one, then gives the missing ones up as lost; the
caller asks ``deadline()`` when to come back if no packet arrives. It knows nothing of time except the
arrival times it is given, so it is tested without a clock.

The first packet starts the stream and is released at once: a packet sent before it that arrives
after it is late. Sequence numbers are extended past 16 bits as they wrap. An implausible jump (more than
``MAX_DROPOUT`` ahead or ``MAX_MISORDER`` behind, RFC 3550 A.1) is dropped unless the next packet
continues from it, in which case the sender has restarted its sequence: what is buffered is released
and the buffer starts again from there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from media_server.rtp.packet import seq_delta

__all__ = ["MAX_DROPOUT", "MAX_MISORDER", "Arrival", "BufferedPacket", "JitterBuffer", "Release"]

MAX_DROPOUT = 3000
MAX_MISORDER = 100
_LOST_MEMORY = 4096  # how far back a given-up sequence number is still recognised as "late"


@dataclass(slots=True)
class BufferedPacket:
    seq: int  # extended sequence number
    timestamp: int  # RTP timestamp as sent (32 bits)
    payload: bytes
    arrival: float  # time.monotonic() of arrival
    media: bool  # False: a packet that takes a sequence number but carries no audio (telephone-event, CN)


@dataclass(frozen=True, slots=True)
class Release:
    packet: BufferedPacket
    lost_before: int  # sequence numbers given up as lost right before it


class Arrival(enum.Enum):
    ACCEPTED = "accepted"
    REORDERED = "reordered"  # accepted, behind a packet that arrived earlier
    DUPLICATE = "duplicate"  # already buffered or released
    LATE = "late"  # its place was already given up as lost
    JUMP = "jump"  # implausible sequence jump, dropped (see module docstring)


class JitterBuffer:
    def __init__(self, hold: float, capacity: int = 1024) -> None:
        self.hold = hold
        self.capacity = capacity
        self._slots: dict[int, BufferedPacket] = {}
        self._ready: list[Release] = []
        self._next: int | None = None  # extended sequence number to release next
        self._origin = 0  # extended sequence number the stream started at: anything before it is late
        self._highest = 0
        self._bad_seq: int | None = None
        self._lost: set[int] = set()

    def __len__(self) -> int:
        return len(self._slots) + len(self._ready)

    def push(self, seq: int, timestamp: int, payload: bytes, arrival: float, *, media: bool = True) -> Arrival:
        """Offer one packet (16-bit ``seq``); what became of it says the result."""
        result = Arrival.ACCEPTED
        if self._next is None:
            self._restart(seq)
            ext = seq
        else:
            delta = seq_delta(seq, self._highest)
            if delta > MAX_DROPOUT or delta < -MAX_MISORDER:
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return Arrival.JUMP
                self._ready = self.drain()  # the old stream's rest goes out first
                self._restart(seq)
            ext = self._highest + seq_delta(seq, self._highest)
            if ext < self._next:
                given_up = ext in self._lost or ext < self._origin or ext < self._next - _LOST_MEMORY
                return Arrival.LATE if given_up else Arrival.DUPLICATE
            if ext in self._slots:
                return Arrival.DUPLICATE
            if ext < self._highest:
                result = Arrival.REORDERED
        self._bad_seq = None
        self._highest = max(self._highest, ext)
        self._slots[ext] = BufferedPacket(ext, timestamp, payload, arrival, media)
        return result

    def pop(self, now: float) -> list[Release]:
        """Release, in sequence order, every packet that need not (or may no longer) wait at ``now``."""
        out, self._ready = self._ready, []
        while self._slots:
            assert self._next is not None
            packet = self._slots.pop(self._next, None)
            if packet is not None:
                out.append(Release(packet, 0))
                self._next += 1
                continue
            deadline = self.deadline()
            if deadline is not None and now < deadline and len(self._slots) < self.capacity:
                break
            out.append(self._give_up_gap())
        return out

    def deadline(self) -> float | None:
        """When the packet that has waited longest must be released, missing ones or not; None if empty."""
        if not self._slots:
            return None
        return min(packet.arrival for packet in self._slots.values()) + self.hold

    def drain(self) -> list[Release]:
        """Release everything, giving up every gap."""
        out, self._ready = self._ready, []
        while self._slots:
            assert self._next is not None
            packet = self._slots.pop(self._next, None)
            if packet is None:
                out.append(self._give_up_gap())
            else:
                out.append(Release(packet, 0))
                self._next += 1
        return out

    def reset(self) -> None:
        """Forget everything, buffered packets included (a new stream follows)."""
        self._slots.clear()
        self._ready.clear()
        self._next = None
        self._bad_seq = None
        self._lost.clear()

    def _give_up_gap(self) -> Release:
        assert self._next is not None
        first = min(self._slots)
        lost = first - self._next
        self._lost.update(range(max(self._next, first - _LOST_MEMORY), first))
        if len(self._lost) > 2 * _LOST_MEMORY:
            self._lost = {seq for seq in self._lost if seq >= first - _LOST_MEMORY}
        self._next = first + 1
        return Release(self._slots.pop(first), lost)

    def _restart(self, seq: int) -> None:
        self._next = self._highest = self._origin = seq
        self._lost.clear()
