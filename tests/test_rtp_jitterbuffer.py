"""The jitter buffer on its own, with made-up arrival times: order, duplicates, loss, lateness, wrap-around."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from media_server.rtp.jitterbuffer import MAX_DROPOUT, Arrival, JitterBuffer, Release

HOLD = 0.1


def _seqs(releases: list[Release]) -> list[int]:
    return [release.packet.seq & 0xFFFF for release in releases]


def _push(buffer: JitterBuffer, seq: int, arrival: float, media: bool = True) -> Arrival:
    return buffer.push(seq, seq * 160, bytes([seq & 0xFF]), arrival, media=media)


def test_in_order_packets_are_released_at_once() -> None:
    buffer = JitterBuffer(HOLD)
    for seq in range(5):
        assert _push(buffer, seq, 0.0) is Arrival.ACCEPTED
        assert _seqs(buffer.pop(0.0)) == [seq]
    assert buffer.deadline() is None
    assert len(buffer) == 0


def test_reordered_packets_are_put_back_in_order() -> None:
    buffer = JitterBuffer(HOLD)
    _push(buffer, 0, 0.0)
    buffer.pop(0.0)
    assert _push(buffer, 2, 0.01) is Arrival.ACCEPTED
    assert _push(buffer, 3, 0.02) is Arrival.ACCEPTED
    assert buffer.pop(0.02) == []
    assert buffer.deadline() == 0.01 + HOLD
    assert _push(buffer, 1, 0.03) is Arrival.REORDERED
    releases = buffer.pop(0.03)
    assert _seqs(releases) == [1, 2, 3]
    assert all(release.lost_before == 0 for release in releases)


def test_duplicates_are_dropped_whether_buffered_or_released() -> None:
    buffer = JitterBuffer(HOLD)
    _push(buffer, 0, 0.0)
    buffer.pop(0.0)
    _push(buffer, 2, 0.0)
    assert _push(buffer, 2, 0.0) is Arrival.DUPLICATE  # still buffered
    assert _push(buffer, 0, 0.0) is Arrival.DUPLICATE  # already released
    _push(buffer, 1, 0.0)
    assert _seqs(buffer.pop(0.0)) == [1, 2]


def test_a_missing_packet_is_given_up_after_the_hold_and_then_late() -> None:
    buffer = JitterBuffer(HOLD)
    _push(buffer, 0, 0.0)
    buffer.pop(0.0)
    _push(buffer, 3, 0.02)
    _push(buffer, 4, 0.04)
    assert buffer.pop(0.02 + HOLD - 0.001) == []
    releases = buffer.pop(0.02 + HOLD)
    assert _seqs(releases) == [3, 4]
    assert [release.lost_before for release in releases] == [2, 0]
    assert _push(buffer, 1, 0.2) is Arrival.LATE
    assert _push(buffer, 2, 0.2) is Arrival.LATE
    assert _push(buffer, 4, 0.2) is Arrival.DUPLICATE


def test_a_packet_from_before_the_first_one_is_late() -> None:
    buffer = JitterBuffer(HOLD)
    _push(buffer, 10, 0.0)
    assert _seqs(buffer.pop(0.0)) == [10]
    assert _push(buffer, 9, 0.0) is Arrival.LATE
    assert _push(buffer, 10, 0.0) is Arrival.DUPLICATE


def test_zero_hold_releases_in_arrival_order() -> None:
    buffer = JitterBuffer(0.0)
    out = []
    for seq in (0, 2, 1, 3, 3, 5, 4):
        _push(buffer, seq, 1.0)
        out += _seqs(buffer.pop(1.0))
    assert out == [0, 2, 3, 5]


def test_sequence_numbers_wrap() -> None:
    buffer = JitterBuffer(HOLD)
    out = []
    for seq in (65533, 65534, 0, 65535, 1, 2):
        _push(buffer, seq, 0.0)
        out += _seqs(buffer.pop(0.0))
    assert out == [65533, 65534, 65535, 0, 1, 2]
    releases_seq = [65533, 65534, 65535, 0, 1, 2]
    assert out == releases_seq


def test_non_media_packets_hold_their_place() -> None:
    buffer = JitterBuffer(HOLD)
    _push(buffer, 0, 0.0)
    _push(buffer, 1, 0.0, media=False)
    _push(buffer, 2, 0.0)
    releases = buffer.pop(0.0)
    assert [release.packet.media for release in releases] == [True, False, True]
    assert all(release.lost_before == 0 for release in releases)


def test_a_sequence_restart_needs_a_second_packet_to_be_believed() -> None:
    buffer = JitterBuffer(HOLD)
    _push(buffer, 100, 0.0)
    buffer.pop(0.0)
    _push(buffer, 102, 0.0)  # waiting for 101
    jump = 100 + MAX_DROPOUT + 500
    assert _push(buffer, jump, 0.0) is Arrival.JUMP
    assert buffer.pop(0.0) == []
    assert _push(buffer, jump + 1, 0.0) is Arrival.ACCEPTED
    releases = buffer.pop(0.0)
    assert _seqs(releases) == [102, jump + 1]  # the old stream's rest, then the new one
    assert _push(buffer, jump + 2, 0.0) is Arrival.ACCEPTED
    assert _seqs(buffer.pop(0.0)) == [jump + 2]


def test_a_full_buffer_gives_up_its_gap_early() -> None:
    buffer = JitterBuffer(10.0, capacity=4)
    _push(buffer, 0, 0.0)
    buffer.pop(0.0)
    for seq in range(2, 6):
        _push(buffer, seq, 0.0)
    assert _seqs(buffer.pop(0.0)) == [2, 3, 4, 5]


def test_drain_releases_everything() -> None:
    buffer = JitterBuffer(10.0)
    for seq in (0, 2, 5):
        _push(buffer, seq, 0.0)
    releases = buffer.drain()
    assert _seqs(releases) == [0, 2, 5]
    assert [release.lost_before for release in releases] == [0, 1, 2]
    assert buffer.deadline() is None


@given(
    start=st.integers(0, 0xFFFF),
    events=st.lists(
        st.tuples(st.integers(0, 60), st.floats(0, 0.3), st.booleans()),  # offset, arrival delay, duplicate
        min_size=1,
        max_size=80,
    ),
    hold=st.sampled_from([0.0, 0.05, 0.2]),
)
@settings(max_examples=400)
def test_fuzz_releases_are_in_order_and_once(start: int, events: list[tuple[int, float, bool]], hold: float) -> None:
    buffer = JitterBuffer(hold)
    released: list[int] = []
    lost = 0
    clock = 0.0
    sent = 0
    arrivals = sorted(((offset * 0.02 + delay, offset, dup) for offset, delay, dup in events))
    for arrival, offset, dup in arrivals:
        clock = max(clock, arrival)
        for _ in range(2 if dup else 1):
            sent += 1
            buffer.push((start + offset) & 0xFFFF, offset * 160, b"x", clock)
        for release in buffer.pop(clock):
            released.append((release.packet.seq - start) & 0xFFFF)
            lost += release.lost_before
    for release in buffer.drain():
        released.append((release.packet.seq - start) & 0xFFFF)
        lost += release.lost_before
    assert released == sorted(set(released))
    assert set(released) <= {offset for offset, _, _ in events}
    assert lost + len(released) == released[-1] - released[0] + 1
