"""The audio of a Riva stream: raw LINEAR_PCM, MULAW or ALAW bytes, or a WAV file as Riva's client sends it (the
header describes the audio and is skipped), as 16-bit samples per channel at the channels' call rate
(:func:`media_server.audio.call_rate`)."""

from __future__ import annotations

import struct

import numpy as np

from media_server.audio import Int16Array, ToCallRate, call_rate
from media_server.codecs.g711 import alaw_decode, ulaw_decode
from media_server.ingest.riva.config import MAX_RATE, MIN_RATE, AudioFormat, BadRequest
from media_server.riva import riva_audio_pb2 as raudio

MAX_WAV_HEADER = 64 * 1024
_WAV_FORMATS = {(1, 16): raudio.LINEAR_PCM, (6, 8): raudio.ALAW, (7, 8): raudio.MULAW}


def parse_wav_header(data: bytes) -> tuple[AudioFormat, int] | None:
    """The format of a WAV file starting ``data`` and where its samples start; None while the header is incomplete.
    Raises ``BadRequest`` for a RIFF that is not a WAV of 16-bit PCM, A-law or mu-law."""
    if len(data) < 12:
        return None
    if data[8:12] != b"WAVE":
        raise BadRequest("the audio starts with a RIFF header but is not a WAV file")
    fmt: AudioFormat | None = None
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if chunk == b"data":
            if fmt is None:
                raise BadRequest("WAV audio: the data chunk comes before the fmt chunk")
            return fmt, body
        if chunk == b"fmt ":
            if body + 16 > len(data):
                return None
            code, channels, rate = struct.unpack_from("<HHI", data, body)
            bits = struct.unpack_from("<H", data, body + 14)[0]
            if code == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                if body + 26 > len(data):
                    return None
                code = struct.unpack_from("<H", data, body + 24)[0]
            encoding = _WAV_FORMATS.get((code, bits))
            if encoding is None:
                raise BadRequest(
                    f"WAV audio in format {code} with {bits}-bit samples is not supported: "
                    "send 16-bit PCM, A-law or mu-law"
                )
            fmt = AudioFormat(encoding, rate, channels)
        pos = body + size + (size & 1)
    return None


class AudioInput:
    """The client's audio bytes as int16 samples per channel at the channels' rate. A WAV header at the start is
    read (it says what the audio is) and skipped; a partial frame of interleaved audio waits for the next message."""

    def __init__(self, fmt: AudioFormat) -> None:
        self.format = fmt
        self.ready = False  # the format is known (after a WAV header, if one starts the audio)
        self._head = b""
        self._rest = b""
        self._to_call_rate: list[ToCallRate] = []

    @property
    def rate(self) -> int:
        """The channels' rate (:func:`media_server.audio.call_rate`)."""
        return call_rate(self.format.sample_rate)

    def feed(self, data: bytes) -> list[Int16Array]:
        """Samples per channel (none while a WAV header is still arriving). Raises ``BadRequest``."""
        if not self.ready:
            self._head += data
            if self._head[:4] == b"RIFF"[: len(self._head)]:
                parsed = parse_wav_header(self._head)
                if parsed is None:
                    if len(self._head) > MAX_WAV_HEADER:
                        raise BadRequest(f"a WAV header without a data chunk in its first {MAX_WAV_HEADER} bytes")
                    return []
                self.format, start = parsed
                if not 1 <= self.format.channels <= 2:
                    raise BadRequest(f"WAV audio with {self.format.channels} channels: send 1 or 2")
                if not MIN_RATE <= self.format.sample_rate <= MAX_RATE:
                    raise BadRequest(f"WAV audio at {self.format.sample_rate} Hz: {MIN_RATE} to {MAX_RATE} Hz")
                data = self._head[start:]
            else:
                data = self._head
            if not self.format.sample_rate:
                raise BadRequest("sample_rate_hertz is required (LINEAR_PCM audio without a WAV header)")
            self.ready = True
            self._head = b""
            self._to_call_rate = [ToCallRate(self.format.sample_rate) for _ in range(self.format.channels)]
        return self._decode(data)

    def flush(self) -> list[Int16Array]:
        """What the resamplers still hold, at the end of the audio."""
        return [convert.flush() for convert in self._to_call_rate if convert.resamples]

    def _decode(self, data: bytes) -> list[Int16Array]:
        fmt = self.format
        if fmt.encoding == raudio.LINEAR_PCM and len(data) % 2:
            raise BadRequest(f"LINEAR_PCM audio is 16-bit samples: a message of {len(data)} bytes is not whole samples")
        data = self._rest + data
        frame = fmt.sample_bytes * fmt.channels
        whole = len(data) - len(data) % frame
        data, self._rest = data[:whole], data[whole:]
        if fmt.encoding == raudio.MULAW:
            samples = ulaw_decode(data)
        elif fmt.encoding == raudio.ALAW:
            samples = alaw_decode(data)
        else:
            samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        channels = [samples[i :: fmt.channels] for i in range(fmt.channels)]
        return [convert(c) for convert, c in zip(self._to_call_rate, channels, strict=True)]
