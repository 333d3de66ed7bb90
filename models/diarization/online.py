"""Online speaker diarization of one mixed mono channel (both parties on one channel).

``OnlineDiarizer`` is fed the channel's audio as it arrives. Speech is found by Silero VAD (when one is
given), by an energy gate, or marked by the caller (``add_speech``, e.g. from the recognizer's
segments). Speech is cut into regions at pauses, and each region into windows (1.5 s, 0.75 s hop; a
region shorter than a window is one window; no window spans a pause, so a turn change at a pause never
mixes two voices in one window). Every window gets a d-vector (``VoiceEncoder``) and is clustered at
once (``OnlineClusterer``): the nearest speaker's centroid, or, once a few windows resemble one another
and none of the known speakers (cosine under ``new_speaker_similarity``), a new speaker, up to
``max_speakers``. "speaker 1" is whoever spoke first, and a name never passes to another voice; a past
window may still move to the other speaker as the centroids settle (early in the call, mostly), so
asking again about an old span can give a better answer than the first time.

``label_segment(start, end)`` names the speaker of a span (a transcript segment, or a word): the speaker
holding most of the windowed speech overlapping it. ``refine()`` re-clusters every window at the end of
the call (spectral clustering, as many speakers as were found online, at least ``min_speakers``) and
keeps the online names where the two agree, for the call's stored transcript.

The thresholds were set on scripted two-voice calls through a G.711 line and on a real two-party phone
call (benchmarks/diarization_der.py); they sit in a narrow band: 0.79 missed the second of two similar
male voices, 0.83 split a single voice. Resemblyzer's d-vectors separate voices less well on real phone
audio than on synthetic speech: expect to tune them on your own calls.

Times are seconds of stream time, as ``StreamingRecognizer`` reports them (``time_offset`` included).
One diarizer per channel; not thread-safe (the ``VoiceEncoder`` it uses is shared and is). ``push``
embeds windows inline, about 13 ms of one core each, in all about 20-30 ms of CPU per second of call audio
(VAD and resampling included): an asyncio server runs it off the event loop, in a worker thread. ``feed``
does the rest and leaves the windows ``waiting`` for ``add_embeddings``: an ``EmbeddingBatcher``
(``batcher.py``) embeds the windows of many channels in one batch, at about half the cost per window.
"""

from __future__ import annotations

import bisect
import logging
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from models.audio import MODEL_SAMPLE_RATE, Float32Array, Int16Array, StreamResampler, int16_to_float32
from models.diarization.clustering import IntArray, OnlineClusterer, match_labels, spectral_clustering
from models.diarization.voice_encoder import VoiceEncoder
from models.vad.silero import SileroVAD, VADStream

log = logging.getLogger(__name__)

_RATE = MODEL_SAMPLE_RATE
_GATE_CHUNK = 512  # 32 ms at 16 kHz, as Silero scores


@dataclass(frozen=True)
class DiarizationConfig:
    window_s: float = 1.5  # audio per embedding
    hop_s: float = 0.75  # between the starts of consecutive windows of one region
    min_window_s: float = 0.5  # a shorter speech region gets no window of its own (its neighbours name it)
    min_tail_s: float = 0.25  # a region's end not covered by this much by its windows gets one more window
    min_pause_s: float = 0.3  # silence that ends a speech region
    min_region_s: float = 0.2  # shorter bursts are noise, not speech
    new_speaker_similarity: float = 0.81  # cosine to every known centroid under which windows are a new speaker ...
    candidate_similarity: float = 0.7  # ... when this many of them, at least this alike, say so together
    new_speaker_windows: int = 3
    centroid_margin: float = 0.03  # a window shapes a centroid only when this much nearer it than any other
    speech_threshold: float = 0.5  # Silero probability that starts speech ...
    silence_threshold: float = 0.35  # ... and under which speech stops
    gate_margin_db: float = 15.0  # energy gate: speech is this far above the tracked noise floor ...
    gate_floor_db: float = -55.0  # ... and above this level (dBFS) in any case
    buffer_s: float = 30.0  # audio kept for windows still to be embedded, and for add_speech
    refine_max_windows: int = 1500  # refine() clusters at most this many windows, and assigns the rest


class Segment(NamedTuple):
    start: float
    end: float
    label: str


@dataclass
class _Window:
    start: int  # samples at 16 kHz from the stream's start
    end: int
    region: int


@dataclass
class _Region:
    """Speech between pauses; ``end`` grows while the region is open."""

    start: int
    end: int
    next_window: int = 0
    windowed_until: int = -1  # end of the region's last planned window; -1: none yet


class _AudioRing:
    """The last stretch of the stream's 16 kHz audio, addressed by sample position."""

    def __init__(self) -> None:
        self._chunks: deque[tuple[int, Float32Array]] = deque()
        self.end = 0

    @property
    def start(self) -> int:
        return self._chunks[0][0] if self._chunks else self.end

    def append(self, audio: Float32Array) -> None:
        if audio.size:
            self._chunks.append((self.end, audio))
            self.end += audio.size

    def slice(self, start: int, end: int) -> Float32Array:
        parts = [c[max(0, start - s) : max(0, end - s)] for s, c in self._chunks if s < end and s + c.size > start]
        if not parts:
            return np.zeros(0, dtype=np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def trim(self, before: int) -> None:
        while self._chunks and self._chunks[0][0] + self._chunks[0][1].size <= before:
            self._chunks.popleft()


def _label(speaker: int) -> str:
    return f"speaker {speaker + 1}"


class OnlineDiarizer:
    """Speaker labels for one mixed channel, as its audio arrives."""

    def __init__(
        self,
        sample_rate: int = _RATE,
        max_speakers: int = 2,
        *,
        min_speakers: int = 1,
        encoder: VoiceEncoder | None = None,
        vad: SileroVAD | None = None,
        external_speech: bool = False,
        config: DiarizationConfig | None = None,
        time_offset: float = 0.0,
    ) -> None:
        """``encoder``: the shared model (loaded here when omitted). Speech is found by ``vad`` when given,
        else by an energy gate; with ``external_speech`` only spans given to ``add_speech`` count.
        ``min_speakers``: the fewest speakers ``refine()`` splits the call into (2 forces a split even when
        only one voice was heard online: it rescues a missed second speaker but splits a monologue)."""
        if sample_rate <= 0:
            raise ValueError(f"invalid sample rate {sample_rate}")
        if not 1 <= min_speakers <= max_speakers:
            raise ValueError("need 1 <= min_speakers <= max_speakers")
        self.sample_rate = sample_rate
        self.max_speakers = max_speakers
        self.min_speakers = min_speakers
        self.config = cfg = config or DiarizationConfig()
        self.time_offset = time_offset
        self.encoder = encoder or VoiceEncoder()
        self.external_speech = external_speech
        self._vad: VADStream | None = vad.new_stream(sample_rate) if vad is not None and not external_speech else None
        self._resampler = StreamResampler(sample_rate, _RATE)
        self._audio = _AudioRing()
        self._window = round(cfg.window_s * _RATE)
        self._hop = round(cfg.hop_s * _RATE)
        self._min_window = round(cfg.min_window_s * _RATE)
        self._min_tail = round(cfg.min_tail_s * _RATE)
        self._min_pause = round(cfg.min_pause_s * _RATE)
        self._min_region = round(cfg.min_region_s * _RATE)
        self._buffer = round(cfg.buffer_s * _RATE)
        # Speech detection state (16 kHz samples).
        self._open: _Region | None = None
        self._in_speech = False
        self._silence = 0
        self._gate_pos = 0
        self._floor_db = -70.0
        # Results.
        self.regions: list[tuple[int, int]] = []  # closed speech regions
        self._windows: list[_Window] = []
        self._window_starts: list[int] = []
        self._pending: deque[_Window] = deque()  # planned, waiting for their audio
        self._waiting: deque[tuple[_Window, Float32Array]] = deque()  # cut, waiting for their d-vectors
        self._clusterer = OnlineClusterer(
            max_speakers,
            new_similarity=cfg.new_speaker_similarity,
            pair_similarity=cfg.candidate_similarity,
            min_windows=cfg.new_speaker_windows,
            margin=cfg.centroid_margin,
        )
        self._closed = False

    # -- input ---------------------------------------------------------------------------------------

    def push(self, pcm: Int16Array | Float32Array) -> None:
        """Feed audio at the channel's rate (int16 or float32 in [-1, 1]); embeds the windows it completes."""
        self.feed(pcm)
        self.embed_waiting()

    def feed(self, pcm: Int16Array | Float32Array) -> None:
        """As ``push``, but the windows it completes wait (``waiting``) until ``add_embeddings`` gets their
        d-vectors: an ``EmbeddingBatcher`` embeds the windows of many channels in one batch."""
        if self._closed:
            raise RuntimeError("diarizer is closed")
        audio = int16_to_float32(pcm) if pcm.dtype == np.int16 else np.asarray(pcm, dtype=np.float32)  # type: ignore[arg-type]
        if audio.size == 0:
            return
        self._audio.append(self._resampler.process(audio))
        if not self.external_speech:
            if self._vad is not None:
                for chunk in self._vad.process(audio):
                    end = chunk.end * _RATE // self.sample_rate
                    self._score(end - _GATE_CHUNK, end, chunk.probability)
            else:
                self._gate()
        self._cut_ready()

    def add_speech(self, start: float, end: float) -> None:
        """Mark ``start``..``end`` (stream seconds) as speech, e.g. a segment from the recognizer or a VAD.

        The span's audio must still be held (the last ``buffer_s``). Spans should come in time order; the
        part of a span before the end of the previous one is ignored.
        """
        a = max(0, round((start - self.time_offset) * _RATE))
        b = round((end - self.time_offset) * _RATE)
        if self.regions:
            a = max(a, self.regions[-1][1])
        if b - a < self._min_region:
            return
        if a < self._audio.start:
            log.warning("speech span %.2f-%.2f s is older than the audio held; ignored", start, end)
            return
        region = _Region(start=a, end=b, next_window=a)
        self._plan_full_windows(region)
        self._close_region(region)
        self._embed_ready()

    def flush(self) -> None:
        """End of the channel: close the open speech region and embed every window still waiting."""
        if self._closed:
            return
        self._closed = True
        self._audio.append(self._resampler.process(np.zeros(0, dtype=np.float32), last=True))
        if self._open is not None:
            self._close_region(self._open)
            self._open = None
        self._embed_ready(final=True)

    # -- speech regions ------------------------------------------------------------------------------

    def _gate(self) -> None:
        cfg = self.config
        while self._audio.end - self._gate_pos >= _GATE_CHUNK:
            start, end = self._gate_pos, self._gate_pos + _GATE_CHUNK
            chunk = self._audio.slice(start, end)
            level = 10.0 * np.log10(float(np.mean(chunk.astype(np.float64) ** 2)) + 1e-12)
            # The floor follows quiet chunks at once and loud ones slowly (about 1.5 dB a second).
            self._floor_db = level if level < self._floor_db else self._floor_db + 0.05
            speech = level > max(cfg.gate_floor_db, self._floor_db + cfg.gate_margin_db)
            self._score(start, end, 1.0 if speech else 0.0)
            self._gate_pos = end

    def _score(self, start: int, end: int, probability: float) -> None:
        cfg = self.config
        start = max(start, 0)
        speech = probability >= cfg.speech_threshold or (self._in_speech and probability >= cfg.silence_threshold)
        self._in_speech = speech
        region = self._open
        if speech:
            if region is None:
                region = self._open = _Region(start=start, end=end, next_window=start)
            region.end = end
            self._silence = 0
            self._plan_full_windows(region)
        elif region is not None:
            self._silence += end - start
            if self._silence >= self._min_pause:
                self._close_region(region)
                self._open = None

    def _plan_full_windows(self, region: _Region) -> None:
        while region.next_window + self._window <= region.end:
            self._plan(region, region.next_window, region.next_window + self._window)
            region.next_window += self._hop

    def _close_region(self, region: _Region) -> None:
        if region.end - region.start < self._min_region:
            return
        if region.windowed_until < 0:
            if region.end - region.start >= self._min_window:
                self._plan(region, region.start, region.end)
        elif region.end - region.windowed_until >= self._min_tail:
            self._plan(region, max(region.start, region.end - self._window), region.end)
        self.regions.append((region.start, region.end))

    def _plan(self, region: _Region, start: int, end: int) -> None:
        window = _Window(start=start, end=end, region=len(self.regions))
        region.windowed_until = end
        self._pending.append(window)

    # -- embedding and online clustering -------------------------------------------------------------

    def _embed_ready(self, final: bool = False) -> None:
        self._cut_ready(final)
        self.embed_waiting()

    def _cut_ready(self, final: bool = False) -> None:
        """Cut the audio of every planned window that has all of it (``final``: every one) for embedding."""
        while self._pending and (final or self._pending[0].end <= self._audio.end):
            window = self._pending.popleft()
            clip = self._audio.slice(window.start, window.end)
            if clip.size >= self._min_window // 2:
                self._waiting.append((window, clip))
        # Keep what the pending windows, the open region and add_speech may still need.
        keep_from = self._audio.end - self._buffer
        if self._pending:
            keep_from = min(keep_from, self._pending[0].start)
        region = self._open
        if region is not None:  # its next full window, and the tail window it may get when it closes
            keep_from = min(keep_from, region.next_window, max(region.start, region.end - self._window))
        self._audio.trim(keep_from)

    @property
    def waiting(self) -> list[Float32Array]:
        """The audio (16 kHz) of the windows cut but not embedded yet, in order."""
        return [clip for _, clip in self._waiting]

    @property
    def waiting_count(self) -> int:
        return len(self._waiting)

    def discard_waiting(self) -> None:
        """Forget the windows waiting for d-vectors (their channel's diarization stopped)."""
        self._waiting.clear()

    def add_embeddings(self, embeddings: Float32Array) -> None:
        """The d-vectors of the first ``len(embeddings)`` ``waiting`` windows, in order: they are clustered now."""
        if len(embeddings) > len(self._waiting):
            raise ValueError(f"{len(embeddings)} embeddings for {len(self._waiting)} waiting windows")
        for embedding in embeddings:
            window, _ = self._waiting.popleft()
            self._clusterer.add(embedding)
            self._windows.append(window)
            self._window_starts.append(window.start)

    def embed_waiting(self) -> None:
        """Embed the waiting windows here (no batcher)."""
        if self._waiting:
            self.add_embeddings(self.encoder.embed_windows(self.waiting))

    # -- output --------------------------------------------------------------------------------------

    @property
    def speakers(self) -> list[str]:
        return [_label(i) for i in range(self._clusterer.n_speakers)]

    @property
    def in_speech(self) -> bool:
        """A speech region is open (speech heard, and no pause since)."""
        return self._open is not None

    @property
    def windows(self) -> int:
        return len(self._windows)

    def label_segment(self, start: float, end: float) -> str | None:
        """The speaker of ``start``..``end`` (stream seconds), e.g. a transcript segment or one word.

        Each window speaks for the stretch of its region nearer its centre than any other window's; the
        speaker holding most of the span wins. A span outside every such stretch (a pause, a burst too
        short for a window) takes the nearest window's speaker; None before any window exists. Cheap (a
        binary search and a few windows), so it can be called per word.
        """
        if not self._windows:
            return None
        a = (start - self.time_offset) * _RATE
        b = max(a, (end - self.time_offset) * _RATE)
        lo = bisect.bisect_left(self._window_starts, a - 2 * self._window)
        hi = bisect.bisect_right(self._window_starts, b + self._window)
        labels = self._clusterer.labels
        votes = np.zeros(self._clusterer.n_speakers)
        for i in range(lo, hi):
            t0, t1 = self._territory(i)
            overlap = min(b, t1) - max(a, t0)
            if overlap > 0 or (overlap == 0 and a == b and t0 <= a < t1):
                votes[labels[i]] += max(overlap, 1.0)
        if votes.any():
            return _label(int(np.argmax(votes)))
        return _label(labels[self._nearest(a, b)])

    def _territory(self, i: int) -> tuple[int, int]:
        """The part of window ``i``'s speech region nearer its centre than its neighbours' (16 kHz samples)."""
        w = self._windows[i]
        if w.region < len(self.regions):
            start, end = self.regions[w.region]
        else:  # the open region
            start, end = w.start, max(w.end, self._open.end if self._open is not None else w.end)
        if i > 0 and self._windows[i - 1].region == w.region:
            before = self._windows[i - 1]
            start = (before.start + before.end + w.start + w.end) // 4
        if i + 1 < len(self._windows) and self._windows[i + 1].region == w.region:
            after = self._windows[i + 1]
            end = (after.start + after.end + w.start + w.end) // 4
        return start, end

    def _nearest(self, a: float, b: float) -> int:
        """Index of the window nearest to the span ``a``..``b`` (16 kHz samples)."""
        i = bisect.bisect_left(self._window_starts, a)
        candidates = range(max(0, i - 2), min(len(self._windows), i + 2))
        return min(candidates, key=lambda j: max(self._windows[j].start - b, a - self._windows[j].end, 0.0))

    def segments(self) -> list[Segment]:
        """The call so far as (start, end, label) speech segments, with the online labels."""
        return self._segments(list(self._clusterer.labels))

    def refine(self) -> list[Segment]:
        """Re-cluster every window offline and return the segments: at the end of the call (it flushes).

        As many speakers as were found online (at least ``min_speakers``); names follow the online ones
        where the two agree most. Does not change the online labels.
        """
        self.flush()
        if not self._windows:
            return []
        speakers = list(self._clusterer.labels)
        k = max(self._clusterer.n_speakers, min(self.min_speakers, len(self._windows)))
        if k > 1 and len(self._windows) > k:
            clusters = self._cluster(self._clusterer.embeddings, k)
            mapping = match_labels(speakers, clusters.tolist())
            for c in clusters.tolist():  # clusters with no online counterpart (min_speakers) get new names
                if c not in mapping:
                    mapping[c] = max([*mapping.values(), *speakers]) + 1
            speakers = [mapping[int(c)] for c in clusters]
        return self._segments(speakers)

    def _cluster(self, embeddings: Float32Array, k: int) -> IntArray:
        n = embeddings.shape[0]
        limit = self.config.refine_max_windows
        if n <= limit:
            return spectral_clustering(embeddings, k)
        # A long call: cluster an even sample, then give every window its nearest cluster centroid.
        sample = np.linspace(0, n - 1, limit).round().astype(np.int64)
        labels = spectral_clustering(embeddings[sample], k)
        centroids = np.stack([embeddings[sample][labels == j].mean(axis=0) for j in range(k)])
        centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        nearest: IntArray = np.argmax(embeddings @ centroids.T, axis=1).astype(np.int64)
        return nearest

    def _segments(self, speakers: list[int]) -> list[Segment]:
        """Each speech region split among its windows' stretches; a region without a window takes the
        nearest window's speaker."""
        if not self._windows:
            return []
        first_window: dict[int, int] = {}
        for i, w in enumerate(self._windows):
            first_window.setdefault(w.region, i)
        out: list[Segment] = []
        for r, (start, end) in enumerate(self.regions):
            first = first_window.get(r)
            if first is None:
                pieces = [(start, end, speakers[self._nearest(start, end)])]
            else:
                pieces = []
                i = first
                while i < len(self._windows) and self._windows[i].region == r:
                    pieces.append((*self._territory(i), speakers[i]))
                    i += 1
            for a, b, speaker in pieces:
                if b <= a:
                    continue
                label = _label(speaker)
                if out and out[-1].label == label and abs(out[-1].end - self._t(a)) < 1e-9:
                    out[-1] = Segment(out[-1].start, self._t(b), label)
                else:
                    out.append(Segment(self._t(a), self._t(b), label))
        return out

    def _t(self, sample: int) -> float:
        return self.time_offset + sample / _RATE
