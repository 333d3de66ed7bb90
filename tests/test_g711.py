"""G.711 mu-law / A-law: ITU reference values, round-trip error bounds and bit-exactness with ``audioop``."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from media_server.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

Encoder = Callable[[npt.NDArray[np.int16]], bytes]
Decoder = Callable[[bytes], npt.NDArray[np.int16]]

ALL_PCM = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))
ULAW_MAX = 32124
ALAW_MAX = 32256


def _audioop() -> ModuleType:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module: ModuleType = pytest.importorskip("audioop")
    return module


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0xFF, 0), (0x7F, 0), (0x00, -ULAW_MAX), (0x80, ULAW_MAX), (0xFE, 8), (0x7E, -8), (0xEF, 132), (0x6F, -132)],
)
def test_ulaw_decode_itu_vectors(code: int, expected: int) -> None:
    out = ulaw_decode(bytes([code]))
    assert out.dtype == np.int16
    assert out.tolist() == [expected]


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0xD5, 8), (0x55, -8), (0xAA, ALAW_MAX), (0x2A, -ALAW_MAX), (0xD4, 24), (0x54, -24)],
)
def test_alaw_decode_itu_vectors(code: int, expected: int) -> None:
    out = alaw_decode(bytes([code]))
    assert out.dtype == np.int16
    assert out.tolist() == [expected]


@pytest.mark.parametrize(("encode", "code"), [(ulaw_encode, 0xFF), (alaw_encode, 0xD5)])
def test_silence_encodes_to_the_idle_code(encode: Encoder, code: int) -> None:
    assert encode(np.zeros(4, dtype=np.int16)) == bytes([code]) * 4


@pytest.mark.parametrize("decode", [ulaw_decode, alaw_decode])
def test_decode_is_odd_symmetric_and_monotonic(decode: Decoder) -> None:
    values = decode(ALL_CODES).astype(np.int32)
    # Flipping the sign bit negates the sample.
    assert np.array_equal(values[:128], -values[128:])
    positives = np.sort(values[values > 0])
    assert len(np.unique(positives)) == len(positives)


def test_decode_empty_input() -> None:
    assert ulaw_decode(b"").shape == (0,)
    assert alaw_decode(b"").shape == (0,)


def test_ulaw_round_trip_error_bounded() -> None:
    x = ALL_PCM.astype(np.int32)
    out = ulaw_decode(ulaw_encode(ALL_PCM)).astype(np.int32)
    err = np.abs(out - x)
    in_range = np.abs(x) <= ULAW_MAX
    # Within range: under half a quantisation step (a 1/32 relative error plus the fine steps near zero).
    assert np.all(err[in_range] <= np.abs(x[in_range]) / 32 + 8)
    assert err[np.abs(x) < 256].max() <= 12
    # Beyond the largest code the encoder clips to it.
    assert np.all(np.abs(out[~in_range]) == ULAW_MAX)
    # Quantisation never reverses the order of two samples.
    assert np.all(np.diff(out) >= 0)


def test_alaw_round_trip_error_bounded() -> None:
    x = ALL_PCM.astype(np.int32)
    out = alaw_decode(alaw_encode(ALL_PCM)).astype(np.int32)
    err = np.abs(out - x)
    assert np.all(err <= np.abs(x) / 32 + 8)
    assert err[np.abs(x) < 256].max() <= 8
    assert np.all(np.diff(out) >= 0)
    assert out.min() == -ALAW_MAX and out.max() == ALAW_MAX


@pytest.mark.parametrize(("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_code_round_trip_is_identity(encode: Encoder, decode: Decoder) -> None:
    back = encode(decode(ALL_CODES))
    if encode is ulaw_encode:
        # mu-law has two zeros (0xFF, 0x7F); the encoder always writes positive zero.
        assert back[0x7F] == 0xFF
        back = back[:0x7F] + bytes([0x7F]) + back[0x80:]
    assert back == ALL_CODES


def test_encode_accepts_non_contiguous_and_wider_input() -> None:
    pcm = np.array([0, 1000, -1000, 32767, -32768], dtype=np.int16)
    assert ulaw_encode(pcm[::2]) == ulaw_encode(pcm)[::2]
    assert alaw_encode(pcm[::2]) == alaw_encode(pcm)[::2]
    assert len(ulaw_encode(pcm)) == len(pcm)


def test_ulaw_matches_audioop_on_every_input() -> None:
    audioop = _audioop()
    assert ulaw_encode(ALL_PCM) == audioop.lin2ulaw(ALL_PCM.astype("<i2").tobytes(), 2)
    expected = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype="<i2")
    assert np.array_equal(ulaw_decode(ALL_CODES), expected)


def test_alaw_matches_audioop_on_every_input() -> None:
    audioop = _audioop()
    assert alaw_encode(ALL_PCM) == audioop.lin2alaw(ALL_PCM.astype("<i2").tobytes(), 2)
    expected = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype="<i2")
    assert np.array_equal(alaw_decode(ALL_CODES), expected)
