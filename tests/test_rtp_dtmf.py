"""RFC 4733 telephone-events: one digit per key press, whatever the redundancy, reordering and loss."""

from __future__ import annotations

import pytest
from aiortp.dtmf import DtmfEvent

from media_server.rtp.dtmf import TelephoneEventReceiver
from media_server.rtp.packet import MalformedPacket


def _event(digit_event: int, *, end: bool, duration: int = 160) -> bytes:
    return DtmfEvent(event=digit_event, end=end, volume=10, duration=duration).serialize()


def _press(receiver: TelephoneEventReceiver, event: int, timestamp: int, ssrc: int = 1) -> None:
    """What a sender emits for one key press: progress packets, then three end packets."""
    for duration in (160, 320, 480):
        receiver.handle(ssrc, timestamp, _event(event, end=False, duration=duration))
    for _ in range(3):
        receiver.handle(ssrc, timestamp, _event(event, end=True, duration=640))


def test_each_press_is_one_digit() -> None:
    digits: list[str] = []
    receiver = TelephoneEventReceiver(digits.append)
    for n, event in enumerate([1, 5, 5, 10, 11, 0, 12, 15]):
        _press(receiver, event, 1000 + 2000 * n)
    assert digits == ["1", "5", "5", "*", "#", "0", "A", "D"]


def test_a_press_whose_end_packets_are_lost_is_reported_when_the_next_begins() -> None:
    digits: list[str] = []
    receiver = TelephoneEventReceiver(digits.append)
    receiver.handle(1, 1000, _event(7, end=False))
    receiver.handle(1, 1000, _event(7, end=False))
    assert digits == []
    receiver.handle(1, 3000, _event(8, end=False))
    assert digits == ["7"]
    receiver.handle(1, 1000, _event(7, end=True))  # a straggler of the first: already reported
    receiver.handle(1, 3000, _event(8, end=True))
    assert digits == ["7", "8"]


def test_flush_reports_a_press_still_going() -> None:
    digits: list[str] = []
    receiver = TelephoneEventReceiver(digits.append)
    receiver.handle(1, 1000, _event(9, end=False))
    receiver.flush()
    receiver.flush()
    assert digits == ["9"]


def test_same_timestamp_on_another_ssrc_is_another_press() -> None:
    digits: list[str] = []
    receiver = TelephoneEventReceiver(digits.append)
    _press(receiver, 3, 1000, ssrc=1)
    _press(receiver, 3, 1000, ssrc=2)
    assert digits == ["3", "3"]


def test_non_digit_events_are_ignored_and_short_payloads_are_malformed() -> None:
    digits: list[str] = []
    receiver = TelephoneEventReceiver(digits.append)
    _press(receiver, 16, 1000)  # flash
    _press(receiver, 200, 3000)
    assert digits == []
    with pytest.raises(MalformedPacket):
        receiver.handle(1, 5000, b"\x01\x80")
