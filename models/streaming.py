"""Streaming recognition of one channel: VAD endpointing, stable interims, one final per utterance.

``StreamingRecognizer`` is fed audio at the channel's native rate (``push``). Silero VAD scores it
chunk by chunk (a live stream's chunks in one run with other streams', where the VAD has a batcher).
While someone speaks, the open utterance is re-decoded every ``interim_interval_s`` of new audio (one
interim in flight per stream at most, so a busy device thins interims out by itself). Once ``endpointing_ms``
of silence follows speech the utterance gets its final result, and after ``utterance_end_ms`` of silence an
utterance-end event (Deepgram's ``UtteranceEnd``).

Interims do not flicker (LocalAgreement, as in whisper_streaming): the words on which two consecutive
hypotheses agree are committed, reported as ``stable_text``, and forced as the decoder's prefix for
every later interim of the utterance, so stable text never changes while the utterance goes on. The
final is decoded freely by default (forcing the prefix there too costs about 2 WER points; see
``final_keeps_stable``), so it may still correct a committed word.

When the last interim already covers all of the utterance's speech and was decoded freely, it becomes
the final: no second decode, and the final arrives sooner. Audio is dropped after each final, so state stays bounded
however long the call runs. Results come out of ``events()`` in order: an interim never follows the
final of its own utterance.

A turn without a pause gets a final at least every ``max_utterance_s``, and loses no word for it. The
final of such a cut is decoded as offline decoding does (timestamps, Whisper's 30 s window) over all the
audio so far, and the turn is cut where Whisper's last segment starts within the last ``cut_search_s``:
the final keeps the segments before it, and the next utterance starts there (``CUT_MARGIN_MS`` early),
as an offline decode seeks on from a segment boundary. Until that final is decoded the continuation holds
the audio from the earliest possible cut and asks for no interim; then it is prompted with the last words
of that final (``prompt_continuation``): a sentence cut in the middle goes on knowing how it began
(Whisper's segments end at line length too, not only at sentences). Where Whisper gives no such boundary (or
the engine cannot say), the cut is the word boundary of the latest interim where the voice dips lowest (a
sentence end where there is one), both sides decoded over ``carry_overlap_ms`` across it; each word goes to
the side of the cut its middle lies on, except that the continuation keeps what the final left out (Whisper
drops an unfinished sentence at the end of its audio): it drops only its words up to the last one the final
also said. Finals never change once sent; only the carried tail is decoded again.

A recording (``batch``: fed faster than real time, nobody waiting for a final) is decoded as offline decoding
decodes it, and reported as a live call is. Pauses shorter than ``batch_join_ms`` do not end an utterance
(faster-whisper's own VAD option joins speech the same way: ``min_silence_duration_ms`` 2000), and an utterance
runs to ``batch_max_utterance_s`` (Whisper's 30 s window) before it is cut: the decoder hears whole exchanges,
not sentences one by one. No interims. Each such final is then split at the pauses of at least
``endpointing_ms`` that the VAD heard inside it (each word to the side its middle lies on), so that a
recording's finals, their ``speech_final`` and their segment numbers come out as a live call's do.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from models.asr.checked_numbers import mend_hypothesis
from models.asr.engine import DecodeRequest, Hypothesis, Word, text_prefix
from models.asr.scheduler import DecodeScheduler, InterimDropped
from models.audio import MODEL_SAMPLE_RATE, Float32Array, Int16Array, int16_to_float32, resample
from models.vad.silero import SileroVAD, VADChunk

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamingConfig:
    endpointing_ms: int = 500  # silence after speech that ends an utterance (final result)
    utterance_end_ms: int = 1000  # silence after the last final before an utterance-end event; 0: none
    interim_results: bool = True
    interim_interval_s: float = 1.0  # new audio between interim decodes
    min_interim_s: float = 0.5  # no interim for an utterance shorter than this
    max_utterance_s: float = 14.0  # a final at least this often on run-on speech (keeps the decode window at 15 s)
    cut_search_s: float = 6.0  # how far back from the limit a long turn's cut may go, looking for a word boundary
    carry_overlap_ms: int = 1000  # without a segment boundary: audio before the cut the continuation decodes again
    cut_overlap_ms: int = 1000  # a word-boundary cut leaves at least this much audio after it
    prompt_previous: bool = False  # prompt the decoder with what was said before (measured: it hurts tiny.en)
    prompt_continuation: bool = True  # a cut turn's continuation: prompt with the turn's text before the cut
    speech_threshold: float = 0.5
    silence_threshold: float = 0.35
    min_speech_ms: int = 200  # shorter bursts are noise, not an utterance
    pad_ms: int = 400  # audio kept before speech starts and after it ends (200 measured worse on conversations)
    hotwords: tuple[str, ...] = ()  # keyterms to favour (product and competitor names)
    stable_interims: bool = True  # LocalAgreement: commit the agreed prefix and force it on later interims
    final_keeps_stable: bool = False  # force it on the final too (no revision ever; costs ~2 WER points)
    fairness_key: str = ""  # whose decode work this is (opaque; the server passes the team): keys share the device
    batch: bool = False  # fed faster than real time (a whole recording): decoded only when no live work waits
    batch_join_ms: int = 2000  # a recording: shorter pauses are decoded with the speech around them (0: none)
    batch_max_utterance_s: float = 28.0  # a recording: a cut at least this often (Whisper's 30 s, less padding)


class SpeechEventType(enum.Enum):
    START_OF_SPEECH = "start_of_speech"
    INTERIM = "interim"
    FINAL = "final"
    UTTERANCE_END = "utterance_end"


@dataclass(frozen=True)
class SpeechEvent:
    type: SpeechEventType
    segment: int  # utterance number within the stream
    start: float  # seconds of stream time (offset included)
    end: float
    text: str = ""
    words: tuple[Word, ...] = ()
    stable_text: str = ""  # the prefix of ``text`` that will not change
    stability: float = 0.0  # share of the words that are stable (1.0 for finals)
    speech_final: bool = False  # a final that ends at a pause (endpointing), as Deepgram's ``speech_final``

    @property
    def confidence(self) -> float:
        return sum(w.confidence for w in self.words) / len(self.words) if self.words else 0.0


@dataclass
class _Utterance:
    segment: int
    start: int  # first sample kept (stream samples)
    chunks: list[Float32Array] = field(default_factory=list)
    samples: int = 0
    speech_samples: int = 0
    last_speech_end: int = 0  # sample after the last chunk scored as speech
    last_interim_at: int = 0  # utterance length at the last interim request
    announced: bool = False
    committed: int = 0  # words that are stable
    stable: str = ""  # their text, exactly as it starts the transcript
    previous: list[str] = field(default_factory=list)  # normalised words of the last interim
    latest: tuple[int, Hypothesis, bool] | None = None  # (audio end, hypothesis, prefixed) of the newest interim
    inflight: _Decode | None = None  # the interim being decoded
    finalized: bool = False
    at_pause: bool = False  # finalized because a pause ended it (not the length limit, a Finalize or the end)
    keep_from: int | None = None  # a long turn's continuation: its words before this sample went to the last final
    before: tuple[Word, ...] | None = None  # a continuation: the last words of that final, once it is decoded
    successor: _Utterance | None = None  # a cut turn: the utterance that carries it on
    settled: asyncio.Future[None] | None = None  # a continuation: done once the final before the cut is decoded

    def audio(self, upto: int | None = None) -> Float32Array:
        data = np.concatenate(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks = [data]
        return data if upto is None else data[: max(0, upto - self.start)]


@dataclass
class _Decode:
    """One decode of an utterance, in the order the stream asked for it."""

    utt: _Utterance
    upto: int  # audio end (stream samples)
    final: bool
    slot: asyncio.Future[SpeechEvent | None]
    prefixed: bool = False  # decoded with the stable prefix forced
    promote: bool = False  # an interim that will serve as the final
    keep_until: int | None = None  # a long turn's cut: words from this sample on belong to the next segment
    cut_from: int | None = None  # a long turn's cut: the earliest sample a segment boundary may move it to


CONTINUATION_PROMPT_WORDS = 40  # of a cut turn's text, the last words a continuation is prompted with
CUT_MARGIN_MS = 300  # a continuation cut at a segment boundary starts this much before it

_PUNCT = re.compile(r"[^\w']+")


def _norm(word: str) -> str:
    return _PUNCT.sub("", word.lower())


class StreamingRecognizer:
    def __init__(
        self,
        sample_rate: int,
        vad: SileroVAD,
        scheduler: DecodeScheduler,
        config: StreamingConfig | None = None,
        time_offset: float = 0.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.config = config or StreamingConfig()
        self.time_offset = time_offset
        self._vad = vad.new_stream(sample_rate)
        # Live audio is scored together with other streams' (VADBatcher); a recording, fed as fast as it is read,
        # at once.
        self._batcher = vad.batcher if not self.config.batch else None
        self._scheduler = scheduler
        self._pos = 0  # samples received
        self._scored = 0  # samples the VAD has scored
        pad = self.config.pad_ms * sample_rate // 1000
        self._preroll: deque[Float32Array] = deque()
        self._preroll_samples = 0
        self._preroll_limit = pad
        self._pad = pad
        self._endpoint = self.config.endpointing_ms * sample_rate // 1000
        self._max_utterance = int(self.config.max_utterance_s * sample_rate)
        self._interims = self.config.interim_results and not self.config.batch
        self._split = 0  # a recording: pauses at least this long split a final (samples; 0: no split)
        if self.config.batch:
            self._split = self._endpoint
            self._endpoint = max(self._endpoint, self.config.batch_join_ms * sample_rate // 1000)
            self._max_utterance = max(self._max_utterance, int(self.config.batch_max_utterance_s * sample_rate))
        self._pauses: deque[tuple[int, int]] = deque()  # a recording: (speech end, speech again) inside utterances
        self._batch_segments = 0  # a recording: finals given out (their segment numbers)
        self._utterance_end = self.config.utterance_end_ms * sample_rate // 1000
        self._min_speech = self.config.min_speech_ms * sample_rate // 1000
        self._utt: _Utterance | None = None
        self._segments = 0
        self._silence = 0
        self._last_final: tuple[int, int] | None = None  # (segment, speech end) awaiting an utterance end
        self._pending_audio: deque[Float32Array] = deque()  # received but not yet scored by the VAD
        self._out: asyncio.Queue[SpeechEvent | None] = asyncio.Queue()
        self._order: deque[asyncio.Future[SpeechEvent | None]] = deque()
        self._drain_task: asyncio.Task[None] | None = None
        self._closed = False
        self._finals_emitted: set[int] = set()
        self._end_slot: asyncio.Future[SpeechEvent | None] | None = None
        self._previous_text = ""  # the text of this stream's last final
        scheduler.stream_opened()

    @property
    def prompt(self) -> str:
        """The decoder's prompt: this channel's previous final, where ``prompt_previous`` asks for it. Off by
        default: with tiny.en it made the decoder repeat the prompt (README, "Context in the prompt")."""
        return self._previous_text if self.config.prompt_previous else ""

    # -- input ---------------------------------------------------------------------------------------

    @property
    def position(self) -> float:
        """Seconds of audio received, in stream time."""
        return self.time_offset + self._pos / self.sample_rate

    @property
    def held_samples(self) -> int:
        """Audio this stream holds right now (bounded by the longest utterance)."""
        held = self._utt.samples if self._utt else 0
        return held + self._preroll_samples + sum(p.size for p in self._pending_audio)

    def push(self, pcm: Int16Array | Float32Array) -> None:
        """Feed audio at the native rate. Cheap: the VAD scores it now or, batched with other live streams'
        chunks, within ``VADBatcher.max_wait_s``; decoding is queued."""
        if self._closed:
            raise RuntimeError("stream is closed")
        if pcm.dtype == np.int16:
            audio = int16_to_float32(pcm)  # type: ignore[arg-type]
        else:
            audio = pcm.astype(np.float32, copy=False)
        if audio.size == 0:
            return
        self._pos += audio.size
        self._pending_audio.append(audio)
        if self._batcher is not None:
            self._batcher.submit(self._vad, audio, self._scored_chunks)
        else:
            self._scored_chunks(self._vad.process(audio))

    def _scored_chunks(self, chunks: list[VADChunk]) -> None:
        for chunk in chunks:
            self._advance(chunk.end, chunk.probability)

    def end(self) -> None:
        """No more audio: finalize the open utterance (if it holds speech) and close ``events()``."""
        if self._closed:
            return
        if self._batcher is not None:
            self._batcher.drain(self._vad)  # what the VAD has not scored yet
        self._closed = True
        self._scheduler.stream_closed()
        self._take_pending(self._pos)
        utt = self._utt
        if utt is not None and utt.speech_samples >= self._min_speech:
            self._finalize(utt, utt.last_speech_end + self._pad, at_pause=False)
        self._utt = None
        done: asyncio.Future[SpeechEvent | None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        self._end_slot = done
        self._enqueue(done)

    def finalize(self) -> None:
        """Finalise the open utterance now with what the VAD has heard of it (Deepgram's ``Finalize``): no
        waiting for a pause. The stream stays open; speech that follows starts a new utterance."""
        if self._closed:
            return
        if self._batcher is not None:
            self._batcher.drain(self._vad)
        utt = self._utt
        if utt is None:
            return
        heard = utt.start + utt.samples
        if utt.speech_samples >= self._min_speech:
            self._finalize(utt, heard, at_pause=False)
        self._close_utterance(utt, keep_from=heard)

    # -- output --------------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[SpeechEvent]:
        while True:
            event = await self._out.get()
            if event is None:
                return
            yield event

    # -- VAD state machine ---------------------------------------------------------------------------

    def _take_pending(self, upto: int) -> None:
        """Move received audio up to sample ``upto`` into the utterance (or the pre-roll)."""
        need = upto - self._scored
        while need > 0 and self._pending_audio:
            head = self._pending_audio[0]
            if head.size <= need:
                piece = self._pending_audio.popleft()
            else:
                piece = head[:need]
                self._pending_audio[0] = head[need:]
            need -= piece.size
            if self._utt is not None:
                self._utt.chunks.append(piece)
                self._utt.samples += piece.size
            else:
                self._preroll.append(piece)
                self._preroll_samples += piece.size
        self._scored = upto - need
        while self._preroll and self._preroll_samples - self._preroll[0].size >= self._preroll_limit:
            self._preroll_samples -= self._preroll.popleft().size

    def _advance(self, end: int, probability: float) -> None:
        start = self._scored
        self._take_pending(end)
        cfg = self.config
        utt = self._utt
        if utt is None:
            if probability < cfg.speech_threshold:
                self._maybe_utterance_end(end)
                return
            # Speech starts: open an utterance with the pre-roll as its padding.
            pre = list(self._preroll)
            pre_samples = sum(p.size for p in pre)
            self._segments += 1
            utt = _Utterance(segment=self._segments, start=end - pre_samples, chunks=pre, samples=pre_samples)
            self._preroll.clear()
            self._preroll_samples = 0
            self._utt = utt
            self._silence = 0
        if probability >= cfg.speech_threshold or (probability >= cfg.silence_threshold and self._silence == 0):
            if self._split and self._silence >= self._split and utt.speech_samples:
                self._pauses.append((utt.last_speech_end, start))
            utt.speech_samples += end - start
            utt.last_speech_end = end
            self._silence = 0
            if not utt.announced and utt.speech_samples >= self._min_speech:
                utt.announced = True
                self._last_final = None  # speech resumed: no utterance end yet
                self._emit_now(
                    SpeechEvent(SpeechEventType.START_OF_SPEECH, utt.segment, self._t(utt.start), self._t(utt.start))
                )
        else:
            self._silence += end - start
        length = end - utt.start
        if self._silence >= self._endpoint:
            if utt.speech_samples >= self._min_speech:
                self._finalize(utt, utt.last_speech_end + self._pad, at_pause=True)
            self._close_utterance(utt, keep_from=utt.last_speech_end + self._pad)
        elif length >= self._max_utterance:
            self._cut(utt, end)
        elif (
            self._interims
            and utt.inflight is None
            and utt.settled is None  # a continuation starts where the cut's final says
            and utt.speech_samples >= self._min_speech
            and length >= cfg.min_interim_s * self.sample_rate
            and length - utt.last_interim_at >= cfg.interim_interval_s * self.sample_rate
        ):
            utt.last_interim_at = length
            self._request(utt, end, final=False)

    def _cut(self, utt: _Utterance, end: int) -> None:
        """A turn with no pause reached ``max_utterance_s``: give it a final and carry the rest into a new
        utterance. The final is decoded as offline decoding does (``segmented``: timestamps, Whisper's own window)
        over all the audio; the turn is cut where its last segment starts (Whisper ends a segment at a sentence
        or clause), so the final holds whole sentences and the continuation starts at the start of one, as an
        offline decode seeks on. Without such a boundary in the last ``cut_search_s`` (or from an engine that
        cannot say), the cut is a word boundary where the voice dips (``_cut_point``), both sides decoded over
        ``carry_overlap_ms`` of audio across it, each word given to the side its middle lies on."""
        rate = self.sample_rate
        cut = self._cut_point(utt, end)
        earliest = max(utt.start + rate, end - int(self.config.cut_search_s * rate))
        utt.finalized = True
        utt.at_pause = False
        self._last_final = (utt.segment, cut)
        self._request(utt, end, final=True, keep_until=cut, cut_from=earliest)
        carried_from = max(utt.start, min(earliest, cut - self.config.carry_overlap_ms * rate // 1000))
        carried = utt.audio()[carried_from - utt.start : end - utt.start].copy()
        utt.chunks = []
        self._segments += 1
        self._utt = utt.successor = _Utterance(
            segment=self._segments,
            start=carried_from,
            chunks=[carried],
            samples=carried.size,
            speech_samples=max(0, utt.last_speech_end - cut),
            last_speech_end=max(cut, utt.last_speech_end),
            announced=True,
            keep_from=cut,
            settled=asyncio.get_running_loop().create_future(),
        )

    def _settle_cut(self, utt: _Utterance, hypothesis: Hypothesis | None, decode: _Decode) -> int:
        """The final before a cut is decoded: where the turn is cut (the sample), the continuation told so and,
        while it has asked for no decode yet, its audio starting there."""
        assert decode.keep_until is not None
        cut = decode.keep_until
        rate = self.sample_rate
        bounds = [utt.start + int(t * rate) for t in (hypothesis.segments[1:] if hypothesis else ())]
        bounds = [b for b in bounds if (decode.cut_from or 0) <= b <= decode.upto - rate // 4]
        nxt = utt.successor
        if nxt is None:
            return bounds[-1] if bounds else cut
        if bounds:
            cut = bounds[-1]
            nxt.keep_from = cut
            start = cut - CUT_MARGIN_MS * rate // 1000  # a little before: Whisper's segment times are rough
            if nxt is self._utt and not nxt.finalized and nxt.inflight is None and start > nxt.start:
                audio = nxt.audio()
                drop = min(start - nxt.start, audio.size)
                nxt.chunks = [audio[drop:]]
                nxt.samples -= drop
                nxt.start += drop
                nxt.last_interim_at = max(0, nxt.last_interim_at - drop)
        return cut

    def _cut_point(self, utt: _Utterance, end: int) -> int:
        """Where to cut a long turn: the word boundary of the latest interim, in the last ``cut_search_s``, where
        the voice dips lowest; without interim words, the quietest point there."""
        rate = self.sample_rate
        overlap = self.config.cut_overlap_ms * rate // 1000
        hi = end - max(overlap, rate // 4)
        lo = max(utt.start + rate, end - int(self.config.cut_search_s * rate))
        if hi <= lo:
            return end
        hop = rate // 100  # 10 ms frames
        audio = utt.audio(end)
        base = lo - hop * 5
        seg = audio[max(0, base - utt.start) : hi + hop * 5 - utt.start]
        frames = seg.size // hop
        if frames == 0:
            return end
        energy = np.sqrt(np.mean(seg[: frames * hop].reshape(frames, hop) ** 2, axis=1))
        energy = np.convolve(energy, np.ones(3) / 3, mode="same")  # a dip, not one quiet frame

        def quietest(a: int, b: int) -> tuple[float, int]:
            i, j = max(0, (a - base) // hop), min(frames, (b - base) // hop + 1)
            if j <= i:
                return float("inf"), a
            k = i + int(np.argmin(energy[i:j]))
            return float(energy[k]), base + k * hop + hop // 2

        best: tuple[float, int] | None = None
        if utt.latest is not None:
            cover, hypothesis, _ = utt.latest
            words = hypothesis.words
            for left, right in pairwise(words):
                if utt.start + int(right.end * rate) > cover - rate // 5:
                    break  # the last words of an interim are the least reliable
                boundary = utt.start + int((left.end + right.start) * rate / 2)
                if lo <= boundary <= hi:
                    energy_at, where = quietest(boundary - rate // 10, boundary + rate // 10)
                    # Whisper leaves out an unfinished sentence at either end of its audio: cut between sentences
                    # where there is one, else between clauses.
                    weight = 0.25 if left.word.endswith((".", "?", "!")) else 0.5 if left.word.endswith(",") else 1
                    if best is None or energy_at * weight <= best[0]:
                        best = (energy_at * weight, where)
        if best is None:
            best = quietest(lo, hi)
        return min(max(best[1], lo), hi)

    def _maybe_utterance_end(self, now: int) -> None:
        if self._last_final is None or not self._utterance_end:
            return
        segment, speech_end = self._last_final
        if now - speech_end >= self._utterance_end:
            self._last_final = None
            t = self._t(speech_end)
            self._emit_now(SpeechEvent(SpeechEventType.UTTERANCE_END, segment, t, t))

    def _close_utterance(self, utt: _Utterance, keep_from: int) -> None:
        """Drop the utterance's audio; what follows ``keep_from`` becomes pre-roll for the next one."""
        tail = utt.audio()[max(0, keep_from - utt.start) :]
        utt.chunks = []
        self._utt = None
        self._silence = 0
        self._preroll.clear()
        self._preroll_samples = 0
        if tail.size and self._preroll_limit:
            tail = tail[-self._preroll_limit :]
            self._preroll.append(tail.copy())
            self._preroll_samples = tail.size

    def _finalize(self, utt: _Utterance, upto: int, at_pause: bool) -> None:
        """The utterance's final, decoded up to ``upto``. ``at_pause``: a pause ended it (``speech_final``), rather
        than the length limit, a client's Finalize or the end of the stream."""
        upto = min(upto, utt.start + utt.samples)
        utt.finalized = True
        utt.at_pause = at_pause
        self._last_final = (utt.segment, min(upto, utt.last_speech_end))
        free = not self.config.final_keeps_stable
        inflight = utt.inflight
        if inflight is not None and inflight.upto >= upto and not (free and inflight.prefixed):
            inflight.promote = True  # the interim on its way covers all the speech: it is the final
            return
        if utt.latest is not None and utt.latest[0] >= upto and inflight is None and not (free and utt.latest[2]):
            cover, hypothesis, _prefixed = utt.latest
            final = self._event(hypothesis, True, utt, self._t(utt.start), self._t(cover))
            if final is not None:
                self._emit_now(final)
            return
        self._request(utt, upto, final=True)

    # -- decoding, in order --------------------------------------------------------------------------

    def _t(self, sample: int) -> float:
        return self.time_offset + sample / self.sample_rate

    def _request(
        self, utt: _Utterance, upto: int, final: bool, keep_until: int | None = None, cut_from: int | None = None
    ) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        forced = bool(utt.stable) and cfg.stable_interims and (not final or cfg.final_keeps_stable)
        audio16 = resample(utt.audio(upto), self.sample_rate, MODEL_SAMPLE_RATE)
        prompt = self.prompt
        if cfg.prompt_continuation and utt.keep_from is not None and utt.settled is None and not prompt:
            # (only once the final before the cut is decoded: before that, the last final is an earlier turn's)
            prompt = " ".join(self._previous_text.split()[-CONTINUATION_PROMPT_WORDS:])
        request = DecodeRequest(
            audio=audio16,
            final=final,
            prompt=prompt or None,
            hotwords=cfg.hotwords,
            prefix=utt.stable if forced else None,
            segmented=cut_from is not None,
            fairness_key=cfg.fairness_key,
            batch=cfg.batch,
        )
        decode = _Decode(
            utt, upto, final, loop.create_future(), prefixed=forced, keep_until=keep_until, cut_from=cut_from
        )
        self._enqueue(decode.slot)
        if not final:
            utt.inflight = decode
        task = loop.create_task(self._decode(decode, request))
        task.add_done_callback(_log_task_error)

    async def _decode(self, decode: _Decode, request: DecodeRequest) -> None:
        utt = decode.utt
        hypothesis: Hypothesis | None = None
        try:
            try:
                hypothesis = await self._scheduler.decode(request)
            except InterimDropped:
                if decode.promote:  # it had become the final: a final is never dropped
                    request.final = True
                    hypothesis = await self._scheduler.decode(request)
            if utt.settled is not None:  # asked for before the cut behind it was settled: learn where it is first
                await asyncio.shield(utt.settled)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("decode failed (segment %d, final=%s)", utt.segment, decode.final)
            hypothesis = Hypothesis(text="") if decode.final or decode.promote else None
        finally:
            if utt.inflight is decode:
                utt.inflight = None
            keep_until = decode.keep_until
            if keep_until is not None and decode.cut_from is not None:
                keep_until = self._settle_cut(utt, hypothesis, decode)
            if not decode.slot.done():
                final = decode.final or decode.promote
                event = None
                if hypothesis is not None:
                    if not final:
                        utt.latest = (decode.upto, hypothesis, decode.prefixed)
                    start, end = self._t(utt.start), self._t(decode.upto)
                    event = self._event(hypothesis, final, utt, start, end, keep_until)
                decode.slot.set_result(event)
            nxt = utt.successor
            if decode.cut_from is not None and nxt is not None and nxt.settled is not None:
                if not nxt.settled.done():
                    nxt.settled.set_result(None)
                nxt.settled = None

    def _event(
        self,
        hypothesis: Hypothesis,
        final: bool,
        utt: _Utterance,
        start: float,
        end: float,
        keep_until: int | None = None,
    ) -> SpeechEvent | None:
        if not final and not hypothesis.text:
            return None
        hypothesis = mend_hypothesis(hypothesis)  # "3714 for 9635..." is 3714 4963 5... where the Luhn check says so
        text = hypothesis.text
        words = _shift(hypothesis.words, start, end)
        committed = len(words)
        stable = text
        if not final:
            stable = self._agree(utt, text, words)  # on the whole hypothesis: it is what the decoder is held to
            committed = utt.committed
        # Across a long turn's cut, a word belongs to the side its middle lies on.
        lo = self._t(utt.keep_from) if utt.keep_from is not None else None
        hi = self._t(keep_until) if keep_until is not None else None
        if lo is not None or hi is not None:
            head, tail = 0, len(words)
            if lo is not None:
                head = _carried_head(words, lo, utt.before)
            while hi is not None and tail > head and _middle(words[tail - 1]) >= hi:
                tail -= 1
            text, stable = _slice(text, stable, words, head, tail)
            words = words[head:tail]
            if lo is not None and utt.before:  # word times run on from the final before the cut
                floor = utt.before[-1].end
                words = tuple(replace(w, start=max(w.start, floor), end=max(w.end, floor)) for w in words)
            if final and hi is not None and utt.successor is not None and utt.successor.before is None:
                utt.successor.before = tuple(w for w in words if _middle(w) >= hi - 2.0)
            committed = max(0, min(committed, tail) - head)
            start = max(start, lo) if lo is not None else start
            end = min(end, hi) if hi is not None else end
            if not final and not words:
                return None
        stability = 1.0 if final else (round(committed / len(words), 3) if words else 0.0)
        if final and text:
            self._previous_text = text
        kind = SpeechEventType.FINAL if final else SpeechEventType.INTERIM
        speech_final = final and utt.at_pause
        return SpeechEvent(kind, utt.segment, start, end, text, words, stable, stability, speech_final)

    def _agree(self, utt: _Utterance, text: str, words: Sequence[Word]) -> str:
        """LocalAgreement-2: commit the words this hypothesis and the previous one agree on."""
        current = [_norm(w.word) for w in words]
        agreed = 0
        for a, b in zip(current, utt.previous, strict=False):
            if a != b:
                break
            agreed += 1
        utt.previous = current
        if self.config.stable_interims and agreed > utt.committed and not utt.finalized:
            prefix = text_prefix(text, words[:agreed])
            if prefix.startswith(utt.stable):
                utt.committed, utt.stable = agreed, prefix
        return utt.stable

    def _emit_now(self, event: SpeechEvent) -> None:
        slot: asyncio.Future[SpeechEvent | None] = asyncio.get_running_loop().create_future()
        slot.set_result(event)
        self._enqueue(slot)

    def _enqueue(self, slot: asyncio.Future[SpeechEvent | None]) -> None:
        self._order.append(slot)
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Hand results to ``events()`` in request order, dropping interims made stale by a final."""
        while self._order:
            slot = self._order[0]
            event = await slot
            self._order.popleft()
            if slot is self._end_slot:
                self._out.put_nowait(None)
                return
            if event is None:
                continue
            if event.type is SpeechEventType.INTERIM and event.segment in self._finals_emitted:
                continue
            if event.type is SpeechEventType.FINAL:
                if event.segment in self._finals_emitted:
                    continue
                self._finals_emitted.add(event.segment)
                self._finals_emitted.discard(event.segment - 8)  # bounded: older segments cannot recur
            if not self.config.batch:
                self._out.put_nowait(event)
                continue
            for piece in self._at_pauses(event) if event.type is SpeechEventType.FINAL else (event,):
                self._out.put_nowait(self._numbered(piece))

    def _at_pauses(self, event: SpeechEvent) -> list[SpeechEvent]:
        """A recording's final split at the pauses the VAD heard inside it (each word to the side its middle lies
        on; a stretch without words gives no final)."""
        pad = self._pad / self.sample_rate
        pauses = []
        while self._pauses and self._t(self._pauses[0][1]) <= event.end:
            quiet_from, speech_again = (self._t(x) for x in self._pauses.popleft())
            if quiet_from >= event.start:
                pauses.append((quiet_from, speech_again))
        if not pauses or not event.words:
            return [event]
        spans = []
        lo = event.start
        for quiet_from, speech_again in pauses:
            middle = (quiet_from + speech_again) / 2
            spans.append((lo, min(middle, quiet_from + pad), middle))
            lo = max(middle, speech_again - pad)
        spans.append((lo, event.end, float("inf")))
        pieces, head = [], 0
        words = event.words
        for i, (start, end, upto) in enumerate(spans):
            tail = head
            while tail < len(words) and _middle(words[tail]) < upto:
                tail += 1
            if tail > head:
                text, _ = _slice(event.text, "", words, head, tail)
                said = words[head:tail]
                pieces.append(
                    replace(
                        event,
                        start=min(start, said[0].start),
                        end=max(end, said[-1].end),
                        text=text,
                        words=said,
                        stable_text=text,
                        speech_final=event.speech_final if i == len(spans) - 1 else True,  # the others end at pauses
                    )
                )
            head = tail
        return pieces or [event]

    def _numbered(self, event: SpeechEvent) -> SpeechEvent:
        """A recording's events numbered by the finals given out (a split final's pieces are finals of their own):
        a final gets the next number, the start of speech the number its final will have, an utterance end its
        final's."""
        if event.type is SpeechEventType.FINAL:
            self._batch_segments += 1
            return replace(event, segment=self._batch_segments)
        after = 0 if event.type is SpeechEventType.UTTERANCE_END else 1
        return replace(event, segment=self._batch_segments + after)


def _middle(word: Word) -> float:
    return (word.start + word.end) / 2


def _carried_head(words: Sequence[Word], cut: float, before: tuple[Word, ...] | None) -> int:
    """How many leading words of a continuation the final before the cut has already said. Each word goes to the
    side of the cut its middle lies on; once that final is known, the continuation's words up to the last one
    that final also said (same word, about the same time) go, and any after it stay: a word before the cut that
    the final left out (Whisper drops an unfinished sentence at the end of its audio) is kept here."""
    if before is None:
        head = 0
        while head < len(words) and _middle(words[head]) < cut:
            head += 1
        return head
    unused = list(before)
    head = 0
    for i, word in enumerate(words):
        mid = _middle(word)
        if mid >= cut + 0.5:
            break
        match = next((p for p in unused if _said_again(p, word)), None)
        if match is not None:
            unused = unused[unused.index(match) + 1 :]  # in order: what the final said before it is passed
            head = i + 1
    return head


def _said_again(said: Word, word: Word) -> bool:
    """Is a continuation's ``word`` the final's ``said`` again: the same word at about the same time, or a piece
    of it heard over it (the final before the cut said "conversion", its continuation began "version")?"""
    a, b = _norm(said.word), _norm(word.word)
    if a == b:
        return abs(_middle(said) - _middle(word)) < 0.6
    return len(b) >= 3 and (a.endswith(b) or a.startswith(b)) and word.start < said.end and word.end > said.start


def _slice(text: str, stable: str, words: Sequence[Word], head: int, tail: int) -> tuple[str, str]:
    """``text`` and its stable prefix cut down to ``words[head:tail]``."""
    begin = len(text_prefix(text, words[:head])) if head else 0
    stop = len(text_prefix(text, words[:tail])) if tail < len(words) else len(text)
    kept = text[begin:stop].strip()
    kept_stable = text[begin : max(begin, min(stop, len(stable)))].strip() if stable else ""
    return kept, kept_stable


def _shift(words: Sequence[Word], offset: float, limit: float) -> tuple[Word, ...]:
    return tuple(
        Word(
            word=w.word,
            start=round(min(offset + w.start, limit), 3),
            end=round(min(offset + w.end, limit), 3),
            confidence=round(w.confidence, 4),
        )
        for w in words
    )


def _log_task_error(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("decode task failed", exc_info=task.exception())
