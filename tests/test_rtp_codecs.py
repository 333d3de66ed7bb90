"""Payload decoders: G.711 from our tables, G.722 and Opus from PyAV, each with its loss concealment.

Speech is real (tests/speech.py), encoded here with PyAV's encoders and decoded back.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt
import pytest
import soxr
from av.audio.codeccontext import AudioCodecContext

from media_server.codecs.g711 import alaw_encode, ulaw_decode, ulaw_encode
from media_server.rtp.codecs import DecodeError, UnsupportedCodec, decoder_for
from media_server.rtp.formats import RtpFormat
from tests.speech import tel8k

Int16Array = npt.NDArray[np.int16]

PCMU = RtpFormat("PCMU", 0, 8000)
PCMA = RtpFormat("PCMA", 8, 8000)
G722 = RtpFormat("G722", 9, 8000)
OPUS = RtpFormat("opus", 111, 48000, 2)


def speech(rate: int, seconds: float = 2.0) -> Int16Array:
    """Real telephone speech, resampled to ``rate``, cut to ``seconds`` (a whole number of 20 ms frames)."""
    utterance = tel8k()[0]
    pcm = utterance.pcm.astype(np.float32)
    if rate != utterance.sample_rate:
        pcm = soxr.resample(pcm, utterance.sample_rate, rate)
    samples = int(rate * seconds) // (rate // 50) * (rate // 50)
    out = np.clip(pcm[:samples], -32768, 32767).astype(np.int16)
    assert len(out) == samples, "the test utterance is shorter than asked"
    return out


def _encoder(codec: str, rate: int, layout: str, bit_rate: int = 0) -> AudioCodecContext:
    context = av.CodecContext.create(codec, "w")
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = rate
    context.layout = layout
    context.format = "s16"
    context.time_base = Fraction(1, rate)
    if bit_rate:
        context.bit_rate = bit_rate
    context.open()
    return context


def _encode_frames(context: AudioCodecContext, pcm: Int16Array, frame: int, channels: int) -> list[bytes]:
    payloads: list[bytes] = []
    layout = "stereo" if channels == 2 else "mono"
    for start in range(0, len(pcm) - frame + 1, frame):
        chunk = pcm[start : start + frame]
        if channels == 2:
            chunk = np.repeat(chunk, 2)
        audio = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout=layout)
        audio.sample_rate = context.sample_rate
        audio.pts = start
        payloads += [bytes(packet) for packet in context.encode(audio)]
    return payloads


def encode_g722(pcm16k: Int16Array) -> list[bytes]:
    """20 ms G.722 payloads (160 bytes each) of 16 kHz PCM."""
    return _encode_frames(_encoder("g722", 16000, "mono"), pcm16k, 320, 1)


def encode_opus(pcm48k: Int16Array, channels: int = 1) -> list[bytes]:
    """20 ms Opus payloads of 48 kHz PCM (the same signal on both channels when stereo)."""
    layout = "stereo" if channels == 2 else "mono"
    return _encode_frames(_encoder("libopus", 48000, layout, 64000), pcm48k, 960, channels)


def best_correlation(decoded: Int16Array, original: Int16Array, max_lag: int) -> float:
    """Pearson correlation of ``decoded`` against ``original``, at the codec delay (0..max_lag) that fits best."""
    best = -1.0
    length = min(len(decoded), len(original)) - max_lag
    for lag in range(max_lag + 1):
        a = decoded[lag : lag + length].astype(np.float64)
        b = original[:length].astype(np.float64)
        best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best


def test_pcmu_and_pcma_decode_with_the_project_tables() -> None:
    pcm = speech(8000, 0.5)
    assert np.array_equal(decoder_for(PCMU).decode(ulaw_encode(pcm)), ulaw_decode(ulaw_encode(pcm)))
    decoded = decoder_for(PCMA).decode(alaw_encode(pcm))
    assert best_correlation(decoded, pcm, 0) > 0.999


def test_stereo_g711_is_downmixed() -> None:
    left = np.full(160, 1000, dtype=np.int16)
    right = np.full(160, 3000, dtype=np.int16)
    payload = ulaw_encode(np.stack([left, right], axis=1).reshape(-1))
    decoded = decoder_for(RtpFormat("PCMU", 0, 8000, 2)).decode(payload)
    assert len(decoded) == 160
    assert abs(int(decoded[0]) - 2000) < 60


def test_g711_concealment_repeats_the_last_frame_fading_to_silence() -> None:
    decoder = decoder_for(PCMU)
    assert not decoder.conceal(160).any()  # nothing decoded yet: silence
    frame = ulaw_encode(speech(8000, 0.02))
    last = decoder.decode(frame)
    concealed = decoder.conceal(800)  # 100 ms: 60 ms fade, then silence
    assert concealed.dtype == np.int16 and len(concealed) == 800
    assert best_correlation(concealed[:160], last, 0) > 0.9
    assert np.abs(concealed[:80]).max() > np.abs(concealed[320:480]).max()
    assert not concealed[480:].any()


def test_g722_round_trip() -> None:
    pcm = speech(16000)
    payloads = encode_g722(pcm)
    assert {len(payload) for payload in payloads} == {160}
    decoder = decoder_for(G722)
    assert decoder.sample_rate == 16000
    decoded = np.concatenate([decoder.decode(payload) for payload in payloads])
    assert decoded.dtype == np.int16
    assert len(decoded) == len(pcm)
    assert best_correlation(decoded, pcm, 40) > 0.9
    assert len(decoder.conceal(320)) == 320


@pytest.mark.parametrize("channels", [1, 2])
def test_opus_round_trip_is_mono(channels: int) -> None:
    pcm = speech(48000)
    payloads = encode_opus(pcm, channels)
    decoder = decoder_for(OPUS)
    assert decoder.sample_rate == 48000
    decoded = np.concatenate([decoder.decode(payload) for payload in payloads])
    assert decoded.dtype == np.int16
    assert len(decoded) == 960 * len(payloads)
    assert best_correlation(decoded, pcm, 480) > 0.9


def test_opus_concealment_is_libopus_plc() -> None:
    pcm = speech(48000, 1.0)
    payloads = encode_opus(pcm)
    decoder = decoder_for(OPUS)
    for payload in payloads[:25]:
        decoder.decode(payload)
    concealed = decoder.conceal(960 + 480 + 100)
    assert len(concealed) == 1540
    assert np.abs(concealed[:480]).max() > 100  # PLC continues the voice, it is not silence
    assert len(decoder.decode(payloads[27])) == 960  # and decoding goes on


def test_undecodable_payloads_raise_decode_error_and_the_decoder_goes_on() -> None:
    payloads = encode_opus(speech(48000, 0.2))
    decoder = decoder_for(OPUS)
    decoder.decode(payloads[0])
    with pytest.raises(DecodeError):
        decoder.decode(b"\xff\xff\xff")
    with pytest.raises(DecodeError):
        decoder.decode(b"")
    assert len(decoder.decode(payloads[1])) == 960
    with pytest.raises(DecodeError):
        decoder_for(G722).decode(b"")


@pytest.mark.parametrize(
    "fmt",
    [RtpFormat("G729", 18, 8000), RtpFormat("telephone-event", 101, 8000), RtpFormat("G722", 9, 8000, 2)],
)
def test_unsupported_formats_have_no_decoder(fmt: RtpFormat) -> None:
    with pytest.raises(UnsupportedCodec):
        decoder_for(fmt)
