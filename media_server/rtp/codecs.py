"""Audio decoders for RTP payloads: one per stream, each with its packet loss concealment.

- PCMU / PCMA: the project's own G.711 tables (media_server.codecs.g711); multichannel payloads
  (RFC 3551 4.1 interleaving) are averaged to mono.
- G.722: ffmpeg's decoder through PyAV (aiortp's G.722 wraps the ``G722`` package, which we do not ship).
- Opus: libopus through PyAV (aiortp's wraps ``opuslib``, which we do not ship). The decoder is opened mono,
  so libopus itself downmixes stereo streams.

Concealment: G.711 and G.722 have none of their own, so aiortp's ``PcmConcealer`` repeats the last
frame with a 60 ms fade to silence. Opus uses libopus's PLC: a packet made of a TOC byte alone carries a
zero-length frame, which libopus decodes as a lost frame (RFC 6716 3.2.1, ``opus_decode_frame``).
Opus in-band FEC would need ``opus_decode(..., decode_fec=1)``, which PyAV does not expose.
"""

from __future__ import annotations

from typing import Protocol

import av
import av.error
import numpy as np
import numpy.typing as npt
from aiortp.plc import PcmConcealer
from av.audio.codeccontext import AudioCodecContext

from media_server.audio import to_int16
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.rtp.formats import RtpFormat

Int16Array = npt.NDArray[np.int16]

__all__ = ["AudioDecoder", "DecodeError", "Int16Array", "UnsupportedCodec", "decoder_for"]


class DecodeError(ValueError):
    """A payload the decoder could not decode; the stream goes on (the receiver conceals it)."""


class UnsupportedCodec(ValueError):
    """A payload format this server cannot decode."""


class AudioDecoder(Protocol):
    """Decodes one stream's payloads, in order, to mono int16 PCM at ``sample_rate``."""

    sample_rate: int

    def decode(self, payload: bytes) -> Int16Array:
        """Decode one RTP payload; raise ``DecodeError`` if it cannot be decoded."""
        ...

    def conceal(self, samples: int) -> Int16Array:
        """``samples`` samples (at ``sample_rate``) standing in for lost audio right after the last decoded."""
        ...


def decoder_for(fmt: RtpFormat) -> AudioDecoder:
    """A fresh decoder for ``fmt``; ``UnsupportedCodec`` for anything outside ``SUPPORTED_CODECS``."""
    if fmt.name in ("PCMU", "PCMA"):
        return G711Decoder(fmt)
    if fmt.name == "G722":
        if fmt.channels != 1:
            raise UnsupportedCodec(f"G722 with {fmt.channels} channels is not supported, only mono")
        return G722Decoder()
    if fmt.name == "opus":
        return OpusDecoder()
    raise UnsupportedCodec(f"no decoder for {fmt.name}/{fmt.clock_rate}; supported: PCMU, PCMA, G722, opus")


class _FadeConcealment:
    """Concealment for codecs without their own: aiortp's repeat-and-fade of the last decoded frame."""

    sample_rate: int

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._concealer = PcmConcealer(sample_rate)

    def _remember(self, pcm: Int16Array) -> Int16Array:
        if len(pcm):
            self._concealer.update(pcm.tobytes())
        return pcm

    def conceal(self, samples: int) -> Int16Array:
        # PcmConcealer speaks native-order 16-bit bytes, as numpy's int16 does.
        return np.frombuffer(self._concealer.conceal(samples), dtype=np.int16).copy()


class G711Decoder(_FadeConcealment):
    def __init__(self, fmt: RtpFormat) -> None:
        super().__init__(fmt.clock_rate)
        self._decode = ulaw_decode if fmt.name == "PCMU" else alaw_decode
        self._channels = fmt.channels

    def decode(self, payload: bytes) -> Int16Array:
        pcm = self._decode(payload)
        if self._channels > 1:
            frames = len(pcm) // self._channels
            pcm = pcm[: frames * self._channels].reshape(frames, self._channels).mean(axis=1).astype(np.int16)
        return self._remember(pcm)


def _open_decoder(codec: str, sample_rate: int) -> AudioCodecContext:
    context = av.CodecContext.create(codec, "r")
    if not isinstance(context, AudioCodecContext):
        raise UnsupportedCodec(f"ffmpeg's {codec} is not an audio decoder")
    context.sample_rate = sample_rate
    context.layout = "mono"
    context.format = "s16"  # a request: decoders that cannot honour it are converted in _to_int16
    context.open()
    return context


def _to_int16(frames: list[av.AudioFrame]) -> Int16Array:
    """Decoded frames of a mono context as one int16 array (whatever sample format the decoder chose)."""
    parts = []
    for frame in frames:
        samples = frame.to_ndarray().reshape(-1)
        parts.append(to_int16(samples.astype(np.float32)) if samples.dtype.kind == "f" else samples.astype(np.int16))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def _decode_with(context: AudioCodecContext, payload: bytes) -> Int16Array:
    if not payload:
        # An empty packet tells ffmpeg to drain the decoder, which would end the stream.
        raise DecodeError("empty payload")
    try:
        return _to_int16(context.decode(av.Packet(payload)))
    except av.error.FFmpegError as exc:
        raise DecodeError(str(exc)) from exc


class G722Decoder(_FadeConcealment):
    def __init__(self) -> None:
        super().__init__(16000)
        self._context = _open_decoder("g722", 16000)

    def decode(self, payload: bytes) -> Int16Array:
        return self._remember(_decode_with(self._context, payload))


# TOC bytes (RFC 6716 3.1) of CELT-only fullband mono packets of one frame (code 0), by frame length in
# samples at 48 kHz. Sent alone, the frame is empty, and libopus conceals that many samples.
_OPUS_PLC_TOC = {960: 31 << 3, 480: 30 << 3, 240: 29 << 3, 120: 28 << 3}


class OpusDecoder:
    sample_rate = 48000

    def __init__(self) -> None:
        self._context = _open_decoder("libopus", 48000)

    def decode(self, payload: bytes) -> Int16Array:
        return _decode_with(self._context, payload)

    def conceal(self, samples: int) -> Int16Array:
        parts: list[Int16Array] = []
        remaining = samples
        while remaining > 0:
            length = next((n for n in _OPUS_PLC_TOC if n <= remaining), 120)
            try:
                pcm = _to_int16(self._context.decode(av.Packet(bytes([_OPUS_PLC_TOC[length]]))))
            except av.error.FFmpegError:
                pcm = np.zeros(length, dtype=np.int16)
            if not len(pcm):
                pcm = np.zeros(length, dtype=np.int16)
            parts.append(pcm)
            remaining -= len(pcm)
        out = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return out[:samples]
